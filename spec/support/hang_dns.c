/*
 * hang_dns.c: an LD_PRELOAD shim for spec/47-trust_spec.lua. getaddrinfo() of
 * the one name "hang.cptokens.test" blocks for CPTOKENS_HANG_SECONDS (default
 * 10) and then fails, as a DNS server that never answers makes it do; every
 * other name goes to the real getaddrinfo(). The machine's resolver is never
 * touched. Built at test time: cc -shared -fPIC -o hang_dns.so hang_dns.c -ldl
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <netdb.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

typedef int (*gai_fn)(const char *, const char *, const struct addrinfo *, struct addrinfo **);

int getaddrinfo(const char *node, const char *service, const struct addrinfo *hints,
                struct addrinfo **res) {
  static gai_fn real;
  if (node && strcmp(node, "hang.cptokens.test") == 0) {
    const char *s = getenv("CPTOKENS_HANG_SECONDS");
    unsigned left = s ? (unsigned)atoi(s) : 10;
    while (left > 0) left = sleep(left);
    return EAI_AGAIN;
  }
  if (real == NULL) *(void **)&real = dlsym(RTLD_NEXT, "getaddrinfo");
  if (real == NULL) return EAI_FAIL;
  return real(node, service, hints, res);
}
