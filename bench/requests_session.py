"""requests.Session baseline for `make bench`: the same GET as client:list().

  /usr/bin/python3 bench/requests_session.py URL CAFILE HEADERFILE WARMUP N

One Session (one keep-alive connection), verify=CAFILE, the headers read from
HEADERFILE (the bench's dummy credential, kept off argv). The reply is decoded
with r.json(), as a script using the list would. Prints the seconds taken by N calls.
"""
import sys
import time

import requests


def main():
    url, cafile, headerfile, warmup, n = sys.argv[1:6]
    headers = {}
    with open(headerfile) as f:
        for line in f:
            if ":" in line:
                k, v = line.rstrip("\r\n").split(":", 1)
                headers[k.strip()] = v.strip()
    url += "/execute/Tokens/list"
    s = requests.Session()
    s.headers.update(headers)

    def call():
        r = s.get(url, verify=cafile)
        if r.status_code != 200 or len(r.json()["data"]) == 0:
            sys.exit("requests: HTTP %d" % r.status_code)

    for _ in range(int(warmup)):
        call()
    t0 = time.perf_counter()
    for _ in range(int(n)):
        call()
    print("%.9f" % (time.perf_counter() - t0))


main()
