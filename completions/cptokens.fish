function __fish_cptokens_print_command
    set -l cmdline (commandline -poc)
    set -l cmd
    set -e cmdline[1]
    for arg in $cmdline
        switch $arg
            case list
                set cmd $cmd list
                break
            case create
                set cmd $cmd create
                break
            case revoke
                set cmd $cmd revoke
                break
            case rename
                set cmd $cmd rename
                break
            case rotate
                set cmd $cmd rotate
                break
            case prune
                set cmd $cmd prune
                break
            case audit
                set cmd $cmd audit
                break
            case whm
                set cmd $cmd whm
                set -e cmdline[1]
                for arg in $cmdline
                    switch $arg
                        case create
                            set cmd $cmd create
                            break
                        case list
                            set cmd $cmd list
                            break
                        case update
                            set cmd $cmd update
                            break
                        case revoke
                            set cmd $cmd revoke
                            break
                        case details
                            set cmd $cmd details
                            break
                        case audit
                            set cmd $cmd audit
                            break
                        case rotate
                            set cmd $cmd rotate
                            break
                    end
                end
                break
            case accounts
                set cmd $cmd accounts
                break
            case fleet
                set cmd $cmd fleet
                set -e cmdline[1]
                for arg in $cmdline
                    switch $arg
                        case list
                            set cmd $cmd list
                            break
                        case audit
                            set cmd $cmd audit
                            break
                        case prune
                            set cmd $cmd prune
                            break
                        case rotate
                            set cmd $cmd rotate
                            break
                    end
                end
                break
            case version
                set cmd $cmd version
                break
            case help
                set cmd $cmd help
                break
        end
    end
    echo "$cmd"
end

function __fish_cptokens_using_command
    test (__fish_cptokens_print_command) = "$argv"
    and return 0
    or return 1
end

function __fish_cptokens_seen_command
    string match -q "$argv*" (__fish_cptokens_print_command)
    and return 0
    or return 1
end

complete -c cptokens -n '__fish_cptokens_using_command' -xa 'list' -d 'the account\'s tokens: name, created, expiry, state'
complete -c cptokens -n '__fish_cptokens_using_command' -xa 'create' -d 'create a token; print it (or save it with --out FILE, or hand it to --exec CMD)'
complete -c cptokens -n '__fish_cptokens_using_command' -xa 'revoke' -d 'revoke tokens (a missing name is not an error)'
complete -c cptokens -n '__fish_cptokens_using_command' -xa 'rename' -d 'rename a token (its secret does not change)'
complete -c cptokens -n '__fish_cptokens_using_command' -xa 'rotate' -d 'new token PREFIX-<time>, saved to FILE; old ones revoked'
complete -c cptokens -n '__fish_cptokens_using_command' -xa 'prune' -d 'revoke expired tokens (of PREFIX\'s rotations only)'
complete -c cptokens -n '__fish_cptokens_using_command' -xa 'audit' -d 'report expired and soon-expiring tokens (exit 3 if any)'
complete -c cptokens -n '__fish_cptokens_using_command' -xa 'whm' -d 'the WHM account\'s own API tokens: ACLs, IP allow-lists, expiry'
complete -c cptokens -n '__fish_cptokens_using_command' -xa 'accounts' -d 'the accounts this WHM credential can act for'
complete -c cptokens -n '__fish_cptokens_using_command' -xa 'fleet' -d 'every account of a server or of a group of servers: list, audit, prune, rotate'
complete -c cptokens -n '__fish_cptokens_using_command' -xa 'version' -d 'the version (as --version; with --json a JSON document)'
complete -c cptokens -n '__fish_cptokens_using_command' -xa 'help' -d 'the tool\'s help, or a command\'s'
complete -c cptokens -s h -l help -d 'Show the help (of a command, after it)'
complete -c cptokens -s V -s v -l version -d 'Print the version'
complete -c cptokens -l url -r -d 'the server: https://host:2083 (cPanel) or https://host:2087 (WHM)'
complete -c cptokens -l user -r -d 'the cPanel account whose tokens are managed'
complete -c cptokens -l cafile -r -d 'trust anchors (default: the system store)'
complete -c cptokens -l capath -r -d 'a hashed directory of trust anchors'
complete -c cptokens -l insecure -d 'do not verify the server\'s certificate (avoid)'
complete -c cptokens -l timeout -r -d 'the whole request (default 30)'
complete -c cptokens -l connect-timeout -r -d 'connecting (default 10)'
complete -c cptokens -l token-file -r -d 'an API token (or a token file), - for standard input'
complete -c cptokens -l password-file -r -d 'the account password, - for standard input'
complete -c cptokens -l otp-file -r -d 'with a password: the two-factor code'
complete -c cptokens -l whm-token-file -r -d 'a WHM token acting for --user'
complete -c cptokens -l whm-user -r -d 'the WHM account owning the WHM token (default root)'
complete -c cptokens -l profile -r -d 'a profile of the configuration file (or CPANEL_PROFILE)'
complete -c cptokens -l config -r -d 'the configuration file (default ~/.config/cptokens/config)'
complete -c cptokens -l json -d 'one JSON document on standard output'
complete -c cptokens -l quiet -d 'no report on standard output (errors, warnings and create\'s token stay)'


complete -c cptokens -n '__fish_cptokens_seen_command create' -l expires-in -r -d 'expire after DURATION (24h, 30d, 2w, 1d12h)'
complete -c cptokens -n '__fish_cptokens_seen_command create' -l expires-at -r -d 'expire at TIME (epoch seconds or ISO 8601)'
complete -c cptokens -n '__fish_cptokens_seen_command create' -l out -r -d 'the token file to write (mode 0600, atomic)'
complete -c cptokens -n '__fish_cptokens_seen_command create' -l exec -r -d 'hand the new token file\'s JSON to CMD\'s standard input (sh -c CMD)'
complete -c cptokens -n '__fish_cptokens_seen_command create' -l exec-timeout -r -d 'how long --exec CMD may take (default 60)'



complete -c cptokens -n '__fish_cptokens_seen_command rotate' -l expires-in -r -d 'expire after DURATION (24h, 30d, 2w, 1d12h)'
complete -c cptokens -n '__fish_cptokens_seen_command rotate' -l expires-at -r -d 'expire at TIME (epoch seconds or ISO 8601)'
complete -c cptokens -n '__fish_cptokens_seen_command rotate' -l out -r -d 'the token file to write (mode 0600, atomic)'
complete -c cptokens -n '__fish_cptokens_seen_command rotate' -l keep -r -d 'old rotations to keep (default 0)'
complete -c cptokens -n '__fish_cptokens_seen_command rotate' -l verify-url -r -d 'the cPanel URL the new token is checked on (WHM on another port)'
complete -c cptokens -n '__fish_cptokens_seen_command rotate' -l dry-run -d 'say what would be created and revoked; change nothing'
complete -c cptokens -n '__fish_cptokens_seen_command rotate' -l exec -r -d 'hand the new token file\'s JSON to CMD\'s standard input (sh -c CMD)'
complete -c cptokens -n '__fish_cptokens_seen_command rotate' -l exec-timeout -r -d 'how long --exec CMD may take (default 60)'

complete -c cptokens -n '__fish_cptokens_seen_command prune' -l prefix -r -d 'only the rotations of PREFIX'
complete -c cptokens -n '__fish_cptokens_seen_command prune' -l dry-run -d 'say what would be created and revoked; change nothing'

complete -c cptokens -n '__fish_cptokens_seen_command audit' -l within -r -d 'the window for expiring tokens (default 7d)'

complete -c cptokens -n '__fish_cptokens_using_command whm' -xa 'create' -d 'create a WHM token; print it (or save it with --out FILE)'
complete -c cptokens -n '__fish_cptokens_using_command whm' -xa 'list' -d 'the WHM tokens: name, created, expiry, state, ACLs, IPs'
complete -c cptokens -n '__fish_cptokens_using_command whm' -xa 'update' -d 'change a WHM token in place (its secret does not change)'
complete -c cptokens -n '__fish_cptokens_using_command whm' -xa 'revoke' -d 'revoke WHM tokens (a missing name is not an error)'
complete -c cptokens -n '__fish_cptokens_using_command whm' -xa 'details' -d 'which WHM token is this? (its value from --token-file FILE, - for standard input)'
complete -c cptokens -n '__fish_cptokens_using_command whm' -xa 'audit' -d 'expired, expiring and risky WHM tokens (exit 3 if any)'
complete -c cptokens -n '__fish_cptokens_using_command whm' -xa 'rotate' -d 'new WHM token PREFIX-<time> with the same ACLs and IPs, saved to FILE; old ones revoked'

complete -c cptokens -n '__fish_cptokens_seen_command whm create' -l acl -r -d 'grant ACL (repeatable; none: full access)'
complete -c cptokens -n '__fish_cptokens_seen_command whm create' -l allow-ip -r -d 'allow an address or CIDR range (repeatable)'
complete -c cptokens -n '__fish_cptokens_seen_command whm create' -l expires-in -r -d 'expire after DURATION (24h, 30d, 2w, 1d12h)'
complete -c cptokens -n '__fish_cptokens_seen_command whm create' -l expires-at -r -d 'expire at TIME (epoch seconds or ISO 8601)'
complete -c cptokens -n '__fish_cptokens_seen_command whm create' -l out -r -d 'the token file to write (mode 0600, atomic)'


complete -c cptokens -n '__fish_cptokens_seen_command whm update' -l rename -r -d 'the token\'s new name'
complete -c cptokens -n '__fish_cptokens_seen_command whm update' -l acl -r -d 'grant ACL (repeatable; none: full access)'
complete -c cptokens -n '__fish_cptokens_seen_command whm update' -l allow-ip -r -d 'allow an address or CIDR range (repeatable)'
complete -c cptokens -n '__fish_cptokens_seen_command whm update' -l any-ip -d 'clear the IP allow-list (any address)'
complete -c cptokens -n '__fish_cptokens_seen_command whm update' -l expires-in -r -d 'expire after DURATION (24h, 30d, 2w, 1d12h)'
complete -c cptokens -n '__fish_cptokens_seen_command whm update' -l expires-at -r -d 'expire at TIME (epoch seconds or ISO 8601)'
complete -c cptokens -n '__fish_cptokens_seen_command whm update' -l never-expires -d 'the token never expires'



complete -c cptokens -n '__fish_cptokens_seen_command whm audit' -l within -r -d 'the window for expiring tokens (default 7d)'

complete -c cptokens -n '__fish_cptokens_seen_command whm rotate' -l expires-in -r -d 'expire after DURATION (24h, 30d, 2w, 1d12h)'
complete -c cptokens -n '__fish_cptokens_seen_command whm rotate' -l expires-at -r -d 'expire at TIME (epoch seconds or ISO 8601)'
complete -c cptokens -n '__fish_cptokens_seen_command whm rotate' -l out -r -d 'the token file to write (mode 0600, atomic)'
complete -c cptokens -n '__fish_cptokens_seen_command whm rotate' -l keep -r -d 'old rotations to keep (default 0)'


complete -c cptokens -n '__fish_cptokens_using_command fleet' -xa 'list' -d 'every account\'s tokens and the WHM tokens of each server'
complete -c cptokens -n '__fish_cptokens_using_command fleet' -xa 'audit' -d 'never-expiring, expired, expiring and risky tokens of every account (exit 3 if any)'
complete -c cptokens -n '__fish_cptokens_using_command fleet' -xa 'prune' -d 'revoke the expired tokens of every account'
complete -c cptokens -n '__fish_cptokens_using_command fleet' -xa 'rotate' -d 'rotate PREFIX in every account: one token file per server and account'

complete -c cptokens -n '__fish_cptokens_seen_command fleet list' -l group -r -d 'a group of WHM profiles of the configuration file'
complete -c cptokens -n '__fish_cptokens_seen_command fleet list' -l format -r -d 'table (the default), json or csv'
complete -c cptokens -n '__fish_cptokens_seen_command fleet list' -l per-server -r -d 'requests in flight to one server (default 8)'
complete -c cptokens -n '__fish_cptokens_seen_command fleet list' -l concurrency -r -d 'requests in flight in all (default 50)'

complete -c cptokens -n '__fish_cptokens_seen_command fleet audit' -l group -r -d 'a group of WHM profiles of the configuration file'
complete -c cptokens -n '__fish_cptokens_seen_command fleet audit' -l format -r -d 'table (the default), json or csv'
complete -c cptokens -n '__fish_cptokens_seen_command fleet audit' -l within -r -d 'the window for expiring tokens (default 7d)'
complete -c cptokens -n '__fish_cptokens_seen_command fleet audit' -l per-server -r -d 'requests in flight to one server (default 8)'
complete -c cptokens -n '__fish_cptokens_seen_command fleet audit' -l concurrency -r -d 'requests in flight in all (default 50)'

complete -c cptokens -n '__fish_cptokens_seen_command fleet prune' -l group -r -d 'a group of WHM profiles of the configuration file'
complete -c cptokens -n '__fish_cptokens_seen_command fleet prune' -l format -r -d 'table (the default), json or csv'
complete -c cptokens -n '__fish_cptokens_seen_command fleet prune' -l prefix -r -d 'only the rotations of PREFIX'
complete -c cptokens -n '__fish_cptokens_seen_command fleet prune' -l dry-run -d 'say what would be created and revoked; change nothing'
complete -c cptokens -n '__fish_cptokens_seen_command fleet prune' -l per-server -r -d 'requests in flight to one server (default 8)'
complete -c cptokens -n '__fish_cptokens_seen_command fleet prune' -l concurrency -r -d 'requests in flight in all (default 50)'

complete -c cptokens -n '__fish_cptokens_seen_command fleet rotate' -l group -r -d 'a group of WHM profiles of the configuration file'
complete -c cptokens -n '__fish_cptokens_seen_command fleet rotate' -l format -r -d 'table (the default), json or csv'
complete -c cptokens -n '__fish_cptokens_seen_command fleet rotate' -l store-dir -r -d 'the directory of the token files (<server>.<account>.token)'
complete -c cptokens -n '__fish_cptokens_seen_command fleet rotate' -l expires-in -r -d 'expire after DURATION (24h, 30d, 2w, 1d12h)'
complete -c cptokens -n '__fish_cptokens_seen_command fleet rotate' -l expires-at -r -d 'expire at TIME (epoch seconds or ISO 8601)'
complete -c cptokens -n '__fish_cptokens_seen_command fleet rotate' -l keep -r -d 'old rotations to keep (default 0)'
complete -c cptokens -n '__fish_cptokens_seen_command fleet rotate' -l per-server -r -d 'requests in flight to one server (default 8)'
complete -c cptokens -n '__fish_cptokens_seen_command fleet rotate' -l concurrency -r -d 'requests in flight in all (default 50)'


