_cptokens() {
    local IFS=$' \t\n'
    local args cur prev cmd opts arg
    args=("${COMP_WORDS[@]}")
    cur="${COMP_WORDS[COMP_CWORD]}"
    prev="${COMP_WORDS[COMP_CWORD-1]}"
    opts="-h --help -V -v --version --url --user --cafile --capath --insecure --timeout --connect-timeout --token-file --password-file --otp-file --whm-token-file --whm-user --profile --config --json --quiet"

    case "$prev" in
        --url)
            COMPREPLY=($(compgen -f -- "$cur"))
            return 0
            ;;
        --user)
            COMPREPLY=($(compgen -f -- "$cur"))
            return 0
            ;;
        --cafile)
            COMPREPLY=($(compgen -f -- "$cur"))
            return 0
            ;;
        --capath)
            COMPREPLY=($(compgen -f -- "$cur"))
            return 0
            ;;
        --timeout)
            COMPREPLY=($(compgen -f -- "$cur"))
            return 0
            ;;
        --connect-timeout)
            COMPREPLY=($(compgen -f -- "$cur"))
            return 0
            ;;
        --token-file)
            COMPREPLY=($(compgen -f -- "$cur"))
            return 0
            ;;
        --password-file)
            COMPREPLY=($(compgen -f -- "$cur"))
            return 0
            ;;
        --otp-file)
            COMPREPLY=($(compgen -f -- "$cur"))
            return 0
            ;;
        --whm-token-file)
            COMPREPLY=($(compgen -f -- "$cur"))
            return 0
            ;;
        --whm-user)
            COMPREPLY=($(compgen -f -- "$cur"))
            return 0
            ;;
        --profile)
            COMPREPLY=($(compgen -f -- "$cur"))
            return 0
            ;;
        --config)
            COMPREPLY=($(compgen -f -- "$cur"))
            return 0
            ;;
    esac

    args=("${args[@]:1}")
    for arg in "${args[@]}"; do
        case "$arg" in
            list)
                cmd="list"
                opts="$opts "
                break
                ;;
            create)
                cmd="create"
                opts="$opts --expires-in --expires-at --out --exec --exec-timeout"
                break
                ;;
            revoke)
                cmd="revoke"
                opts="$opts "
                break
                ;;
            rename)
                cmd="rename"
                opts="$opts "
                break
                ;;
            rotate)
                cmd="rotate"
                opts="$opts --expires-in --expires-at --out --keep --verify-url --dry-run --exec --exec-timeout"
                break
                ;;
            prune)
                cmd="prune"
                opts="$opts --prefix --dry-run"
                break
                ;;
            audit)
                cmd="audit"
                opts="$opts --within"
                break
                ;;
            whm)
                cmd="whm"
                opts="$opts "
                args=("${args[@]:1}")
                for arg in "${args[@]}"; do
                    case "$arg" in
                        create)
                            cmd="$cmd create"
                            opts="$opts --acl --allow-ip --expires-in --expires-at --out"
                            break
                            ;;
                        list)
                            cmd="$cmd list"
                            opts="$opts "
                            break
                            ;;
                        update)
                            cmd="$cmd update"
                            opts="$opts --rename --acl --allow-ip --any-ip --expires-in --expires-at --never-expires"
                            break
                            ;;
                        revoke)
                            cmd="$cmd revoke"
                            opts="$opts "
                            break
                            ;;
                        details)
                            cmd="$cmd details"
                            opts="$opts "
                            break
                            ;;
                        audit)
                            cmd="$cmd audit"
                            opts="$opts --within"
                            break
                            ;;
                        rotate)
                            cmd="$cmd rotate"
                            opts="$opts --expires-in --expires-at --out --keep"
                            break
                            ;;
                    esac
                done
                break
                ;;
            accounts)
                cmd="accounts"
                opts="$opts "
                break
                ;;
            fleet)
                cmd="fleet"
                opts="$opts "
                args=("${args[@]:1}")
                for arg in "${args[@]}"; do
                    case "$arg" in
                        list)
                            cmd="$cmd list"
                            opts="$opts --group --format --per-server --concurrency"
                            break
                            ;;
                        audit)
                            cmd="$cmd audit"
                            opts="$opts --group --format --within --per-server --concurrency"
                            break
                            ;;
                        prune)
                            cmd="$cmd prune"
                            opts="$opts --group --format --prefix --dry-run --per-server --concurrency"
                            break
                            ;;
                        rotate)
                            cmd="$cmd rotate"
                            opts="$opts --group --format --store-dir --expires-in --expires-at --keep --per-server --concurrency"
                            break
                            ;;
                    esac
                done
                break
                ;;
            version)
                cmd="version"
                opts="$opts "
                break
                ;;
            help)
                cmd="help"
                opts="$opts "
                break
                ;;
        esac
    done

    case "$cmd" in
        '')
            COMPREPLY=($(compgen -W "list create revoke rename rotate prune audit whm accounts fleet version help" -- "$cur"))
            ;;
        'create')
            case "$prev" in
                --expires-in)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --expires-at)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --out)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --exec)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --exec-timeout)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
            esac

            ;;
        'rotate')
            case "$prev" in
                --expires-in)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --expires-at)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --out)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --keep)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --verify-url)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --exec)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --exec-timeout)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
            esac

            ;;
        'prune')
            case "$prev" in
                --prefix)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
            esac

            ;;
        'audit')
            case "$prev" in
                --within)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
            esac

            ;;
        'whm')
            COMPREPLY=($(compgen -W "create list update revoke details audit rotate" -- "$cur"))
            ;;
        'whm create')
            case "$prev" in
                --acl)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --allow-ip)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --expires-in)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --expires-at)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --out)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
            esac

            ;;
        'whm update')
            case "$prev" in
                --rename)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --acl)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --allow-ip)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --expires-in)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --expires-at)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
            esac

            ;;
        'whm audit')
            case "$prev" in
                --within)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
            esac

            ;;
        'whm rotate')
            case "$prev" in
                --expires-in)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --expires-at)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --out)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --keep)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
            esac

            ;;
        'fleet')
            COMPREPLY=($(compgen -W "list audit prune rotate" -- "$cur"))
            ;;
        'fleet list')
            case "$prev" in
                --group)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --format)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --per-server)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --concurrency)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
            esac

            ;;
        'fleet audit')
            case "$prev" in
                --group)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --format)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --within)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --per-server)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --concurrency)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
            esac

            ;;
        'fleet prune')
            case "$prev" in
                --group)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --format)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --prefix)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --per-server)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --concurrency)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
            esac

            ;;
        'fleet rotate')
            case "$prev" in
                --group)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --format)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --store-dir)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --expires-in)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --expires-at)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --keep)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --per-server)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --concurrency)
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
            esac

            ;;
    esac

    if [[ "$cur" = -* ]]; then
        COMPREPLY=($(compgen -W "$opts" -- "$cur"))
    fi
}

complete -F _cptokens -o bashdefault -o default cptokens
