--- cptokens.cli.help: the help texts of the command-line tool (`cptokens help [COMMAND]`,
-- `cptokens COMMAND --help`). Loaded only when help is asked for. A command module that
-- plugs in (cli/args.lua) adds its text here under its name.
local CONNECTION_HELP = [[
Connection (flags, or the environment):
  --url URL             CPANEL_URL    https://host:2083 (cPanel) or https://host:2087 (WHM)
  --user USER           CPANEL_USER   the cPanel account whose tokens are managed
  --cafile FILE         CPANEL_CAFILE trust anchors (default: the system store)
  --capath DIR          CPANEL_CAPATH
  --insecure            do not verify the server's certificate (avoid)
  --timeout SECONDS     whole request (default 30); --connect-timeout SECONDS (default 10)
  --profile NAME        CPANEL_PROFILE a profile of the configuration file (--config FILE,
                        CPTOKENS_CONFIG; default ~/.config/cptokens/config): its URL, user,
                        credential, trust anchors and timeouts. Flags, then the environment,
                        then the profile, then a token file's own URL and user; a flag or
                        variable sending the profile's credential to another server or
                        account is refused, and so is a credential given beside a profile.

Credentials (exactly one; never as a command-line value, which every user sees in ps):
  CPANEL_TOKEN=...      or --token-file FILE        an API token
  CPANEL_PASSWORD=...   or --password-file FILE     the account password
    CPANEL_OTP=...      or --otp-file FILE          with a password: the two-factor code
  WHM_TOKEN=...         or --whm-token-file FILE    a WHM token acting for --user
    --whm-user NAME                                 the WHM account owning it (default root)
  FILE may be - for standard input. One trailing newline is ignored. A token file
  written by `create --out` or `rotate --out` also works, and supplies --url,
  --user and --cafile when they are not given otherwise.

Output:
  --json                one JSON document on standard output, with stable keys
  --quiet               nothing on standard output but what create hands over (the token);
                        errors and warnings still go to standard error
]]

local HELP = {}

HELP[""] = [[
Usage: cptokens COMMAND [ARGS] [OPTIONS]

Manage the API tokens of a cPanel account, without ever putting a secret on
the command line or printing one (except the new token `create` hands you).

Commands:
  list                         the account's tokens: name, created, expiry, state
  create NAME                  create a token; print it (or save it with --out FILE)
  revoke NAME...               revoke tokens (a missing name is not an error)
  rename OLD NEW               rename a token (its secret does not change)
  rotate PREFIX --out FILE     new token PREFIX-<time>, saved to FILE; old ones revoked
  prune [--prefix PREFIX]      revoke expired tokens (of PREFIX's rotations only)
  audit [--within D]           report expired and soon-expiring tokens (exit 3 if any)
  whm create NAME [--acl ACL]... [--allow-ip CIDR]...
                               a WHM API token with restricted permissions (root or a reseller)
  whm list | update NAME | revoke NAME... | details --token-file FILE
                               list, change in place, revoke, identify WHM tokens
  whm audit [--within D]       expired, expiring and risky WHM tokens (exit 3 if any)
  whm rotate PREFIX --out FILE new WHM token with the same ACLs and IPs; old ones revoked
  accounts                     the accounts this WHM credential can act for
  fleet list|audit|prune|rotate  every account of a server, or of a --group of servers
  help [COMMAND]               this text, or a command's
  version                      the version (also -v, -V, --version; with --json as JSON)

Run `cptokens help COMMAND` or `cptokens COMMAND --help` for details,
`cptokens --version` for the version.

]] .. CONNECTION_HELP .. [[

Exit status: 0 success; 1 the operation failed (the error on stderr); 2 usage
or configuration error (nothing was sent); 3 audit found expired or expiring
tokens (whm audit: or risky ones); 128+N create or rotate received signal N and
stopped where no new token is left unseen (130: SIGINT).
]]

HELP.list = [[
Usage: cptokens list [--json] [CONNECTION]

Lists the account's tokens, oldest first: name, creation time, expiry (ISO 8601
UTC, or "never") and state ("expires in 3d", "expired 2h ago", "never expires").
Secrets are never listed: cPanel keeps only a hash of each token.

]] .. CONNECTION_HELP

HELP.create = [[
Usage: cptokens create NAME [--expires-in DURATION | --expires-at TIME] [--out FILE] [--exec CMD]
                       [CONNECTION]

Creates a full-access token named NAME (1 to 50 of A-Z a-z 0-9 _ -).
  --expires-in DURATION   e.g. 24h, 30d, 2w, 1d12h, "24 hours"
  --expires-at TIME       epoch seconds, or ISO 8601 such as 2026-12-31T23:59:59Z
  (neither: the token never expires)
  --out FILE              write the token to FILE and print only its name and expiry.
                          FILE is a JSON token file (name, token, expiry, url, user),
                          mode 0600, written atomically and durably; --token-file
                          reads it back (its url and user then serve as defaults)
  --exec CMD              run sh -c CMD with the token file's JSON on its standard
                          input (a secrets manager: vault, gh, kubectl, systemd-creds);
                          the token counts as delivered when CMD exits 0 having read
                          it all. CMD's output goes to stderr; CPANEL_TOKEN,
                          CPANEL_PASSWORD, CPANEL_OTP and WHM_TOKEN are not in its
                          environment. Otherwise (a failure, --exec-timeout SECONDS,
                          default 60, or nothing read) the new token is revoked.

Without --out, the token alone is printed on standard output, so that
    TOKEN=$(cptokens create deploy --expires-in 24h)
works. It is shown this once: cPanel keeps only a hash. With --json the document
holds the token (or, with --out, the file name instead). If it cannot be handed
over (a closed pipe, a full disk, Ctrl-C or another signal), it is revoked.

]] .. CONNECTION_HELP

HELP.revoke = [[
Usage: cptokens revoke NAME... [CONNECTION]

Revokes each named token. A name with no token is reported but is not an
error (revoking is idempotent). Stops at the first failure (exit 1).

]] .. CONNECTION_HELP

HELP.rename = [[
Usage: cptokens rename OLD NEW [CONNECTION]

Renames a token. Its secret does not change.

]] .. CONNECTION_HELP

HELP.rotate = [[
Usage: cptokens rotate PREFIX --out FILE [--expires-in DURATION | --expires-at TIME] [--keep N]
                       [--verify-url URL] [--exec CMD] [--dry-run] [CONNECTION]

Creates a new token PREFIX-YYYYMMDDHHMMSS (UTC), checks that it works, stores it
in FILE (a JSON token file, written atomically and durably, keeping the file's
owner and mode) and only then revokes the token FILE held before and the older
ones it kept, keeping the N newest (--keep, default 0). The new token is never
printed. A failure before that point revokes the new token, and FILE still holds
the previous one. Rotations of one FILE never overlap (FILE.lock: a second one
waits up to 30 s); a run killed at any moment is finished by the next one.
A token with the prefix that FILE does not hold is left alone, with a warning.
The credential may be the token file itself (--token-file FILE --out FILE):
the tool goes on with the new token. Exits 1 if a revocation of an old token
failed (one line on stderr for each; the next run retries it).
  --expires-in DURATION, --expires-at TIME   the new token's expiry, as for create
  --verify-url URL   where the new token is checked: the account's cPanel URL. Needed
                     through WHM (WHM_TOKEN) on a port other than 2087, whose cPanel port
                     cannot be guessed (with 2087, https://host:2083 is used).
  --exec CMD         also hand the new token to CMD (as create --exec), before FILE is
                     replaced: if CMD fails, the rotation fails at its store step (the new
                     token revoked, FILE untouched); if CMD succeeds and FILE cannot be
                     written, both keep a valid token and nothing is revoked.
  --dry-run          say what would be created, revoked and kept; change nothing.

]] .. CONNECTION_HELP

HELP.prune = [[
Usage: cptokens prune [--prefix PREFIX] [--dry-run] [CONNECTION]

Revokes expired tokens. With --prefix, only the rotations of PREFIX (the tokens
`cptokens rotate PREFIX` makes, named PREFIX-YYYYMMDDHHMMSS) are considered.
Exits 1 if a revocation failed (one line on stderr for each). With --dry-run,
the tokens that would be revoked are named and none is.

]] .. CONNECTION_HELP

HELP.audit = [[
Usage: cptokens audit [--within DURATION] [CONNECTION]

Reports every token as expired, expiring (within DURATION, default 7d), never
expiring, or fine. Exits 3 when a token is expired or expiring, so that cron
can alert on it:
    0 8 * * *  cptokens audit --within 14d || echo "cPanel tokens need attention"

]] .. CONNECTION_HELP

local WHM_CONNECTION_HELP = [[
Connection (flags, or the environment):
  --url URL             CPANEL_URL    the WHM port: https://host:2087
  --whm-user NAME       WHM_USER      the WHM account: root (the default) or a reseller
  --cafile FILE         CPANEL_CAFILE trust anchors (default: the system store)
  --capath DIR          CPANEL_CAPATH
  --insecure            do not verify the server's certificate (avoid)
  --timeout SECONDS     whole request (default 30); --connect-timeout SECONDS (default 10)
  --profile NAME        CPANEL_PROFILE a WHM profile (whm_user, no user) of the configuration
                        file (--config FILE, CPTOKENS_CONFIG; see `cptokens help list`)
  (--user is refused: these commands act as the WHM account, not for a cPanel account)

Credentials (exactly one; never as a command-line value, which every user sees in ps):
  WHM_TOKEN=...         or --whm-token-file FILE    a WHM API token of the account
  CPANEL_PASSWORD=...   or --password-file FILE     the WHM account's password
    CPANEL_OTP=...      or --otp-file FILE          with a password: the two-factor code
  FILE may be - for standard input. A WHM token file written by `whm create --out`
  or `whm rotate --out` also works, and supplies --url, --whm-user and --cafile
  when they are not given otherwise.

Output:
  --json                one JSON document on standard output, with stable keys
  --quiet               nothing on standard output but what whm create hands over
]]

HELP.whm = [[
Usage: cptokens whm SUBCOMMAND [ARGS] [OPTIONS]

The WHM account's own API tokens (root or a reseller): tokens limited to a set
of ACLs and, optionally, to source addresses, with an expiry that can be changed
in place. What WHM's "Manage API Tokens" page does, from a shell.

  cptokens whm create NAME [--acl ACL]... [--allow-ip CIDR]...
                      [--expires-in DURATION | --expires-at TIME] [--out FILE]
      Creates a token; prints it alone (or saves it to FILE, mode 0600, and
      prints its name and expiry). No --acl: FULL ACCESS (every privilege of the
      account). --acl names a WHM ACL (list-accts, create-acct, ...: plugins add
      more; "all" is full access); --allow-ip an IPv4/IPv6 address or CIDR range
      (at most 100). Not delivered (a closed pipe, a full disk, a signal): revoked.
  cptokens whm list
      NAME  CREATED  EXPIRES  STATE  ACLS (or "full access")  IPS (or "any")
  cptokens whm update NAME [--rename NEW] [--acl ACL]... [--allow-ip CIDR]...
                      [--any-ip] [--expires-in D | --expires-at T | --never-expires]
      Changes the token in place; its secret stays the same. --acl replaces the
      whole set; --allow-ip the whole list; --any-ip clears the list.
  cptokens whm revoke NAME...
      Revokes the named tokens (a missing name is reported, not an error).
  cptokens whm details --token-file FILE
      Which token is this? The value comes from FILE (- for standard input, or a
      token file); the server's record is shown. Exit 1 when the server knows no
      such token (never made here, revoked or expired).
  cptokens whm audit [--within DURATION]
      Every token: expired, expiring (within DURATION, default 7d), never
      expiring, fine; and its risks: full_access, create-user-session, passwd,
      manage-api-tokens, cpanel-api, no_ip_allowlist, no_expiry. Exits 3 when a
      token is expired, expiring or risky.
  cptokens whm rotate PREFIX --out FILE [--expires-in D | --expires-at T] [--keep N]
      As `cptokens rotate` (the lock, verify before store, FILE keeps a working
      token on every failure, old ones revoked last), for WHM tokens: the new
      token PREFIX-YYYYMMDDHHMMSS keeps the ACLs and IP list of the one it
      replaces. The credential may be FILE itself (--whm-token-file FILE).

]] .. WHM_CONNECTION_HELP

HELP.accounts = [[
Usage: cptokens accounts [--json] [CONNECTION]

The cPanel accounts this WHM credential can act for (WHM's listaccts: every
account for root, its own for a reseller): USER  DOMAIN  OWNER  SUSPENDED.

]] .. WHM_CONNECTION_HELP

HELP.fleet = [[
Usage: cptokens fleet list|audit|prune|rotate [--profile P | --group G] [OPTIONS]

Every cPanel account a WHM credential can act for (root: all of them; a
reseller: its own; root and the reseller itself are skipped), on one server
(--profile P, CPANEL_PROFILE, or the connection options below) or on every WHM
profile of a group of the configuration file (--group G), concurrently.

  cptokens fleet list   [--format table|json|csv]
      Every account's tokens and each credential's own WHM tokens.
  cptokens fleet audit  [--within DURATION] [--format table|json|csv]
      Per account: tokens, never-expiring, expired, expiring (within DURATION,
      default 7d); then the tokens needing attention, WHM tokens with their risks,
      and a summary line. Exits 3 when a token is expired or expiring, or a WHM
      token risky (never-expiring cPanel tokens are reported, not an alarm).
      cPanel never deletes expired tokens, and restoring an account's backup
      brings back the tokens it had then, revoked ones included: audit after it.
  cptokens fleet prune  [--prefix PREFIX] [--dry-run] [--format table|json|csv]
      Revokes every expired token (of PREFIX's rotations only); --dry-run names
      them and sends nothing but the listings.
  cptokens fleet rotate PREFIX --store-dir DIR [--expires-in D | --expires-at T] [--keep N]
      `cptokens rotate PREFIX` in every account (suspended ones are left alone),
      one after another, each into DIR/<server>.<account>.token (as rotate --out
      writes it, with all its guarantees). A signal lets the rotation under way
      finish and starts no other (exit 128+N).

  --group NAME        the WHM profiles of [group NAME]; each server's URL, WHM user
                      and credential come from its profile (--url, --whm-user and
                      credential flags are refused with it; --cafile, --capath and
                      the timeouts apply to every server)
  --per-server N      requests in flight to one server (default 8)
  --concurrency N     requests in flight in all (default 50)
  --format FORMAT     table (default), json (one document; also --json) or csv:
                      server,account,suspended,status,kind,name,created,expires,
                      state,risks,action,detail (one row per token; one per account
                      without tokens, failed, not reached or rotated)

The first authentication failure at a server stops every further request there
(cPHulk locks an address out after a few failed logins); the accounts not
reached are reported. A progress line is drawn on standard error when it is a
terminal (not with --quiet). Exit status: 0; 1 when a server or an account
failed or was not reached (one line on stderr each; the report says which); 2
usage or configuration errors; 3 see audit.

]] .. WHM_CONNECTION_HELP

HELP.version = [[
Usage: cptokens version [--json]    (also cptokens -v, -V or --version)

Prints "cptokens VERSION", or with --json {"name":"cptokens","version":"VERSION"}.
]]

HELP.help = [[
Usage: cptokens help [COMMAND]
]]

return HELP
