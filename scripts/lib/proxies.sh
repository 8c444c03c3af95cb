# scripts/lib/proxies.sh — start and stop the example proxies on loopback (bash, sourced).
#
#   . "$root/scripts/lib/proxies.sh"
#   SD_WORK=$(mktemp -d ...)                      # every run directory, log and socket goes here
#   trap sd_stop_all EXIT
#   sd_free_ports 4 30000                         # SD_PORTS=(four consecutive free UDP ports)
#   sd_keys tests/data/vectors/keys               # private copy of proxy1's keys: SD_KEY_DIR
#   sd_module build                               # private copy of the module: SD_MODULE_DIR
#   sd_start_proxy p1 p1 "$P1" "$P2" WITH_DIALOG  # trusted-proxy.cfg, log $SD_WORK/p1.log
#   sd_start_proxy p2 p2 "$P2" "$UAS"             # untrusted-proxy.cfg
#   sd_wait_bound "$P1" "$SD_PID" P1 "$SD_WORK/p1.log"
#   sd_start_in "$SD_WORK" "$SD_WORK/uas.out" sipp -sf ...   # any other process, same guard
#   sd_rpc p1 sipsd.stats                         # kamcmd over P1's private ctl socket
#
# P1 is Kamailio with cfg-examples/trusted-proxy.cfg and the sipsd module, P2 Kamailio with
# cfg-examples/untrusted-proxy.cfg, an edge Kamailio with cfg-examples/edge.cfg (sipsd in role
# edge, its keys in the directory SD_KEY_DIR names: local.key/.crt, proxy1.crt, peers/,
# signers/). The command line of both is made by sd_proxy_args, here
# only: scripts/demo, scripts/bench, scripts/soak, tests/kamailio/smoke.sh and the Rust tests
# (tests/support/kamailio.rs asks this file for the argument vector) all start them this way.
# Every process is started in its own session (setsid): sd_stop stops its whole process group
# (Kamailio's forked workers too) with TERM, then KILL after 3 s.

SD_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
SD_ADDR=${SD_ADDR:-127.0.0.1}
SD_PIDS=()

# sd_bound PORT: true when a UDP socket is bound to PORT (read from /proc/net/udp{,6}, no bind).
sd_bound() {
    awk -v p="$(printf ':%04X' "$1")" \
        'FNR > 1 && substr($2, length($2) - 4) == p { f = 1 } END { exit !f }' \
        /proc/net/udp /proc/net/udp6 2>/dev/null
}

# sd_free_ports N [BASE]: SD_PORTS=(N consecutive UDP ports nothing is bound to), searched
# upwards from BASE (default 20000) plus an offset from this shell's pid, so that concurrent
# runs start apart.
sd_free_ports() {
    local n=$1 base=${2:-20000} i ok
    base=$((base + ($$ % 500) * n))
    while :; do
        ok=1
        for ((i = 0; i < n; i++)); do
            if sd_bound $((base + i)); then ok=0; break; fi
        done
        [ $ok = 1 ] && break
        base=$((base + n))
    done
    SD_PORTS=()
    for ((i = 0; i < n; i++)); do SD_PORTS+=($((base + i))); done
}

# sd_keys SRC [DST]: proxy1.key, proxy1.crt (and psk-proxy1.hex when SRC has it) copied to DST
# (default $SD_WORK/keys), directory 0700 and files 0600: the library refuses private keys
# others can read. Sets SD_KEY_DIR.
sd_keys() {
    local src=$1 dst=${2:-$SD_WORK/keys} f
    mkdir -p "$dst"
    for f in proxy1.key proxy1.crt psk-proxy1.hex; do
        if [ -f "$src/$f" ]; then
            cp "$src/$f" "$dst/$f"
        elif [ "$f" != psk-proxy1.hex ]; then
            echo "proxies.sh: no $src/$f" >&2
            return 1
        fi
    done
    chmod 700 "$dst" && chmod 600 "$dst"/*
    SD_KEY_DIR=$(cd "$dst" && pwd)
}

# sd_module BUILD [DST]: a private copy of BUILD/sipsd.so and BUILD/libsipsd.so (default
# $SD_WORK/module), so that a `make` elsewhere never changes the code under a running
# Kamailio. Sets SD_MODULE_DIR.
sd_module() {
    local build=$1 dst=${2:-$SD_WORK/module}
    mkdir -p "$dst"
    cp "$build/sipsd.so" "$build/libsipsd.so" "$dst/" || return 1
    SD_MODULE_DIR=$(cd "$dst" && pwd)
}

# sd_ctl NAME: the control socket of proxy NAME (kamcmd -s ...).
sd_ctl() { printf 'unix:%s/%s.ctl' "$SD_WORK" "$1"; }

# sd_proxy_args ROLE NAME PORT NEXT [DEFINE...]: the Kamailio command line of a proxy.
#   ROLE    p1 (trusted-proxy.cfg: sipsd with the keys in $SD_KEY_DIR, module from
#           $SD_MODULE_DIR, control socket `sd_ctl NAME`), p2 (untrusted-proxy.cfg) or edge
#           (edge.cfg: sipsd as an edge with the keys in $SD_KEY_DIR; NEXT is the core side)
#   NAME    names its run directory $SD_WORK/NAME (created) and control socket
#   PORT    its UDP port on $SD_ADDR
#   NEXT    the next hop's port on $SD_ADDR, or - to leave NEXT_HOP to a DEFINE
#   DEFINE  NAME or NAME=VALUE, passed as -A (WITH_DIALOG, 'NEXT_HOP="sip:..."', ...)
# SD_MEMORY_MANAGER, when set (e.g. tlsf), is Kamailio's memory manager for both the shared and
# the private pools (-x NAME -X NAME); unset, Kamailio's default (qm).
# Sets SD_CFG_ARGS (-f CFG -A ...: what `kamailio -c` checks) and SD_ARGS (foreground, log to
# stderr, its own runtime directory, then SD_CFG_ARGS).
sd_proxy_args() {
    local role=$1 name=$2 port=$3 next=$4 d
    shift 4
    case "$role" in
    p1)
        [ -n "${SD_KEY_DIR:-}" ] || { echo "proxies.sh: sd_keys first (SD_KEY_DIR)" >&2; return 1; }
        SD_CFG_ARGS=(-f "$SD_ROOT/cfg-examples/trusted-proxy.cfg" -A "P1_ADDR=$SD_ADDR" -A "P1_PORT=$port"
            -A "SIPSD_KEY_DIR=$SD_KEY_DIR" -A "CTL_SOCKET=$(sd_ctl "$name")")
        [ -n "${SD_MODULE_DIR:-}" ] && SD_CFG_ARGS+=(-A "SIPSD_MODULE_DIR=$SD_MODULE_DIR")
        ;;
    p2)
        SD_CFG_ARGS=(-f "$SD_ROOT/cfg-examples/untrusted-proxy.cfg" -A "P2_ADDR=$SD_ADDR" -A "P2_PORT=$port")
        ;;
    edge)
        [ -n "${SD_KEY_DIR:-}" ] || { echo "proxies.sh: an edge needs SD_KEY_DIR" >&2; return 1; }
        SD_CFG_ARGS=(-f "$SD_ROOT/cfg-examples/edge.cfg" -A "EDGE_ADDR=$SD_ADDR" -A "EDGE_PORT=$port"
            -A "SIPSD_KEY_DIR=$SD_KEY_DIR" -A "CTL_SOCKET=$(sd_ctl "$name")")
        [ -n "${SD_MODULE_DIR:-}" ] && SD_CFG_ARGS+=(-A "SIPSD_MODULE_DIR=$SD_MODULE_DIR")
        ;;
    *)
        echo "proxies.sh: role $role is not p1, p2 or edge" >&2
        return 1
        ;;
    esac
    [ "$next" = - ] || SD_CFG_ARGS+=(-A "NEXT_HOP=\"sip:$SD_ADDR:$next\"")
    for d in "$@"; do SD_CFG_ARGS+=(-A "$d"); done
    mkdir -p "$SD_WORK/$name"
    SD_ARGS=(-DD -E -Y "$SD_WORK/$name" -w "$SD_WORK/$name")
    [ -n "${SD_MEMORY_MANAGER:-}" ] && SD_ARGS+=(-x "$SD_MEMORY_MANAGER" -X "$SD_MEMORY_MANAGER")
    SD_ARGS+=("${SD_CFG_ARGS[@]}")
}

# sd_start_in DIR LOG CMD...: CMD in directory DIR, in its own session (its pid is its process
# group), stdout and stderr to LOG, stdin from /dev/null. Sets SD_PID and adds it to SD_PIDS
# (sd_stop_all).
sd_start_in() {
    local dir=$1 log=$2
    shift 2
    # the subshell is no group leader, so setsid does not fork: $! is CMD's pid
    (cd "$dir" && exec setsid "$@" </dev/null >"$log" 2>&1) &
    SD_PID=$!
    SD_PIDS+=("$SD_PID")
}

# sd_start LOG CMD...: sd_start_in the current directory.
sd_start() { sd_start_in . "$@"; }

# sd_start_proxy ROLE NAME PORT NEXT [DEFINE...]: sd_proxy_args, then Kamailio with them,
# logging to $SD_WORK/NAME.log. Sets SD_PID. Wait for it with sd_wait_bound.
# SD_WRAP, when set, is a command line (words split at blanks) Kamailio runs under, e.g.
# "valgrind --tool=callgrind ..." (scripts/bench step 9 counts instructions so).
sd_start_proxy() {
    local wrap=()
    sd_proxy_args "$@" || return 1
    [ -n "${SD_WRAP:-}" ] && read -r -a wrap <<<"$SD_WRAP"
    sd_start "$SD_WORK/$2.log" ${wrap[@]+"${wrap[@]}"} kamailio "${SD_ARGS[@]}"
}

# sd_wait_bound PORT PID NAME [LOG]: wait (10 s at most, SD_WAIT_SECS to change it) until PORT
# is bound; fails, with the last lines of LOG, when PID exits first or the time is up.
sd_wait_bound() {
    local port=$1 pid=$2 name=$3 log=${4:-} i
    for ((i = 0; i < ${SD_WAIT_SECS:-10} * 10; i++)); do
        sd_bound "$port" && return 0
        if ! kill -0 "$pid" 2>/dev/null; then
            echo "proxies.sh: $name exited before binding udp port $port" >&2
            [ -n "$log" ] && tail -20 "$log" >&2
            return 1
        fi
        sleep 0.1
    done
    echo "proxies.sh: $name did not bind udp port $port in ${SD_WAIT_SECS:-10} s" >&2
    [ -n "$log" ] && tail -20 "$log" >&2
    return 1
}

# sd_stop PID...: TERM each process group, wait up to 3 s for its leader, then KILL the group
# (forked workers that outlived the leader too). A pid that is not a group leader is signalled
# alone. The pids leave SD_PIDS.
sd_stop() {
    local p i
    for p in "$@"; do
        kill -TERM -- "-$p" 2>/dev/null || kill -TERM "$p" 2>/dev/null || true
    done
    for p in "$@"; do
        for ((i = 0; i < 30; i++)); do
            kill -0 "$p" 2>/dev/null || break
            sleep 0.1
        done
        kill -KILL -- "-$p" 2>/dev/null || kill -KILL "$p" 2>/dev/null || true
    done
    # forget them: a pid stopped here is never signalled again (it may be reused)
    local keep=() q
    for q in "${SD_PIDS[@]}"; do
        for p in "$@"; do [ "$q" = "$p" ] && continue 2; done
        keep+=("$q")
    done
    SD_PIDS=("${keep[@]}")
}

# sd_stop_all: sd_stop on everything sd_start started (for `trap sd_stop_all EXIT`).
sd_stop_all() {
    [ ${#SD_PIDS[@]} -eq 0 ] || sd_stop "${SD_PIDS[@]}"
}

# sd_cpu_counters PID: "utime stime minflt majflt vcsw ivcsw runtime_ns" summed over every
# process of the session PID leads (a proxy started by sd_start: Kamailio and all its forks):
# clock ticks in user and in kernel mode and the page faults from /proc/PID/stat, the voluntary
# and the involuntary context switches from /proc/PID/status, and the time on a CPU in ns from
# /proc/PID/schedstat (the scheduler's own account, which utime + stime are scaled to; exact,
# where the ticks of each process are truncated to 10 ms).
sd_cpu_counters() {
    local pid
    for pid in $(ps -o pid= -s "$1"); do
        awk 'FILENAME ~ /schedstat$/ { r = $1; next }
            FILENAME ~ /stat$/ { sub(/.*\) /, ""); u = $12; s = $13; mi = $8; ma = $10; next }
            /^voluntary_ctxt_switches/ { v = $2 }
            /^nonvoluntary_ctxt_switches/ { iv = $2 }
            END { printf "%d %d %d %d %d %d %.0f\n", u, s, mi, ma, v, iv, r }' \
            "/proc/$pid/stat" "/proc/$pid/status" "/proc/$pid/schedstat" 2>/dev/null
    done | awk '{ for (i = 1; i <= 7; i++) t[i] += $i }
        END { printf "%d %d %d %d %d %d %.0f\n", t[1], t[2], t[3], t[4], t[5], t[6], t[7] }'
}

# sd_cpu_ticks PID: clock ticks (utime + stime) of the session PID leads (sd_cpu_counters).
sd_cpu_ticks() {
    sd_cpu_counters "$1" | awk '{ print $1 + $2 }'
}

# sd_rpc NAME CMD [ARG...]: an RPC to proxy NAME over its control socket (10 s at most).
sd_rpc() {
    local name=$1
    shift
    timeout 10 kamcmd -s "$(sd_ctl "$name")" "$@" 2>&1
}
