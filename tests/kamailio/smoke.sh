#!/bin/bash
# tests/kamailio/smoke.sh — the sipsd module in a real Kamailio, end to end on loopback.
#
#   UAC (sipp) --> trusted proxy (sipsd) --> untrusted proxy --> UAS (sipp -sn uas)
#
# The UAC sends an INVITE whose SDP is S/MIME encrypted (CMS AuthEnvelopedData, AES-256-GCM,
# RSA-OAEP recipients: callee and proxy1; made by OpenSSL), base64 transfer encoding, with
# Disclose-To naming proxy1. Then ACK, BYE through the record-routed path.
#
# Checks, each printed:
#   - kamailio -c accepts both example configurations with the module loaded;
#   - both proxies start (the module's mod_init loads the keys and makes the shared cache);
#   - the call completes (sipp UAC exit status 0);
#   - the trusted proxy logged "decrypted" for the INVITE with the media address and port of
#     the plaintext SDP, key source "wrapped" and generation 1;
#   - the trusted proxy logged "not-decrypted code=2" for the unencrypted 200 OK SDP;
#   - the untrusted proxy saw the INVITE with the same body size: forwarded unchanged;
#   - no plaintext SDP line appears in any proxy log (log_plaintext is 0);
#   - with the sipsd CLI built: a second call whose in-dialog INFO carries EncryptedData
#     under the dialog key is read from the shared cache (source=cache);
#   - RPC over ctl (kamcmd): sipsd.stats counts the decryptions, the dialog keys were dropped
#     after the BYE (SMOKE_DIALOG=1: dialog callbacks; 0: sd_dialog_end()), statistics sipsd:*,
#     sipsd.reload re-reads the keys.
#
# Needs: build/sipsd.so (make), kamailio, sipp (scripts/setup-deps). Runs as any user. The
# proxies are started with scripts/lib/proxies.sh (as scripts/demo, bench and soak do).
# SMOKE_REPLACE_BODY=1: the trusted proxy replaces the body by the plaintext (checked at the
# callee instead of "forwarded unchanged"). SMOKE_DIALOG=0: no dialog module.
# Environment: SIPSD_BUILD (default <repo>/build), SIPSD_VECTORS (default <repo>/../shared/vectors
# or tests/data), SMOKE_KEEP=1 keeps the work directory.
set -u

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
# shellcheck source=../../scripts/lib/proxies.sh
. "$root/scripts/lib/proxies.sh"
build=${SIPSD_BUILD:-$root/build}
vectors=${SIPSD_VECTORS:-}
if [ -z "$vectors" ]; then
    for d in "$root/tests/data" "$root/../shared/vectors" /work/shared/vectors; do
        if [ -f "$d/keys/proxy1.key" ] && [ -f "$d/msgs/gcm256-oaep-callee-proxy1.der" ]; then
            vectors=$d
            break
        fi
    done
fi

fail=0
pass() { printf 'PASS  %s\n' "$*"; }
flunk() { printf 'FAIL  %s\n' "$*"; fail=1; }
die() { printf 'FAIL  %s\n' "$*"; exit 1; }

[ -f "$build/sipsd.so" ] && [ -f "$build/libsipsd.so" ] || die "no $build/sipsd.so: run make"
[ -n "$vectors" ] || die "no test vectors (keys/ and msgs/) found"
command -v kamailio >/dev/null || die "kamailio not installed (scripts/setup-deps)"
command -v sipp >/dev/null || die "sipp not installed (scripts/setup-deps)"

work=$(mktemp -d /tmp/sipsd-smoke.XXXXXX)
SD_WORK=$work
cleanup() {
    sd_stop_all
    if [ "${SMOKE_KEEP:-0}" = 1 ]; then
        echo "work directory kept: $work"
    else
        rm -rf "$work"
    fi
}
trap cleanup EXIT INT TERM

# free UDP ports on loopback
sd_free_ports 4 20000
P1=${SD_PORTS[0]} P2=${SD_PORTS[1]} UAS=${SD_PORTS[2]} UAC=${SD_PORTS[3]}
echo "ports: trusted=$P1 untrusted=$P2 uas=$UAS uac=$UAC; vectors: $vectors"

# keys private to this run (the library refuses group/world-readable private keys)
sd_keys "$vectors/keys" || die "cannot copy the keys"
SD_MODULE_DIR=$build

T_DEFS=(WITH_PSK)
# SMOKE_REPLACE_BODY=1: the trusted proxy forwards the plaintext (sd_replace_body())
replace=${SMOKE_REPLACE_BODY:-0}
[ "$replace" = 1 ] && T_DEFS+=(WITH_REPLACE_BODY)
# SMOKE_DIALOG=1 (default): dialog module loaded, keys end through its callbacks;
# SMOKE_DIALOG=0: no dialog module, the script calls sd_dialog_end()
if [ "${SMOKE_DIALOG:-1}" = 1 ]; then
    T_DEFS+=(WITH_DIALOG)
    end_how="dialog module callbacks"
else
    end_how="sd_dialog_end() in the script"
fi
sd_proxy_args p1 trusted "$P1" "$P2" "${T_DEFS[@]}" || die "sd_proxy_args p1"
T_ARGS=("${SD_CFG_ARGS[@]}")
sd_proxy_args p2 untrusted "$P2" "$UAS" || die "sd_proxy_args p2"
U_ARGS=("${SD_CFG_ARGS[@]}")

# 1. configuration check
if kamailio -c "${T_ARGS[@]}" >"$work/check-trusted.log" 2>&1; then
    pass "kamailio -c accepts cfg-examples/trusted-proxy.cfg with sipsd loaded"
else
    cat "$work/check-trusted.log"
    die "kamailio -c rejects trusted-proxy.cfg"
fi
if kamailio -c "${U_ARGS[@]}" >"$work/check-untrusted.log" 2>&1; then
    pass "kamailio -c accepts cfg-examples/untrusted-proxy.cfg"
else
    cat "$work/check-untrusted.log"
    die "kamailio -c rejects untrusted-proxy.cfg"
fi

# 2. start the proxies (foreground, logs to $work/trusted.log and untrusted.log), each with
# its own runtime dir
sd_start_proxy p1 trusted "$P1" "$P2" "${T_DEFS[@]}"
trusted_pid=$SD_PID
sd_start_proxy p2 untrusted "$P2" "$UAS"
untrusted_pid=$SD_PID

# SIPp scenarios. The callee answers with a plain SDP and keeps the proxies' Record-Route
# (sipp's built-in uas does not), so ACK, INFO and BYE take the record-routed path.
# uas_answer METHOD: receive one in-dialog METHOD and answer it 200 OK without a body.
uas_answer() {
    cat <<XML
  <recv request="$1"/>
  <send>
    <![CDATA[
      SIP/2.0 200 OK
      [last_Via:]
      [last_From:]
      [last_To:]
      [last_Call-ID:]
      [last_CSeq:]
      Content-Length: 0

    ]]>
  </send>
XML
}

# uas_xml [info]: with "info", also answer one in-dialog INFO.
uas_xml() {
    cat <<'XML'
<?xml version="1.0" encoding="ISO-8859-1" ?>
<scenario name="sipsd smoke UAS">
  <recv request="INVITE" crlf="true"/>
  <send>
    <![CDATA[
      SIP/2.0 200 OK
      [last_Via:]
      [last_From:]
      [last_To:];tag=[pid]SIPpTag01[call_number]
      [last_Call-ID:]
      [last_CSeq:]
      [last_Record-Route:]
      Contact: <sip:[local_ip]:[local_port];transport=[transport]>
      Content-Type: application/sdp
      Content-Length: [len]

      v=0
      o=bob 1 1 IN IP4 [local_ip]
      s=-
      c=IN IP4 [local_ip]
      t=0 0
      m=audio [auto_media_port] RTP/AVP 0
      a=rtpmap:0 PCMU/8000
    ]]>
  </send>
  <recv request="ACK"/>
XML
    [ "${1:-}" = info ] && uas_answer INFO
    uas_answer BYE
    echo '</scenario>'
}

# uac_in_dialog METHOD CSEQ [CONTENT-TYPE BODYFILE]: one in-dialog request and its 200
uac_in_dialog() {
    local hdrs="" body="" retrans=' retrans="500"'
    if [ $# -ge 4 ]; then
        hdrs="      Content-Type: $3
      Content-Transfer-Encoding: base64
"
        body="$(cat "$4")
"
    fi
    [ "$1" = ACK ] && retrans=""   # an ACK is never retransmitted on its own
    cat <<XML
  <send$retrans>
    <![CDATA[
      $1 [next_url] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      From: <sip:alice@127.0.0.1:[local_port]>;tag=[pid]SIPpTag00[call_number]
      To: <sip:bob@127.0.0.1:$UAS>[peer_tag_param]
      Call-ID: [call_id]
      CSeq: $2 $1
      [routes]
      Contact: <sip:alice@[local_ip]:[local_port]>
      Max-Forwards: 70
${hdrs}      Content-Length: [len]

$body    ]]>
  </send>
XML
    [ "$1" = ACK ] || echo '  <recv response="200"/>'
}

# uac_xml CONTENT-TYPE BODYFILE [INFO-CONTENT-TYPE INFO-BODYFILE]: INVITE with a base64
# S/MIME body and Disclose-To naming proxy1 (and proxy2, to check header joining), ACK,
# optionally an in-dialog INFO with an encrypted body, BYE.
uac_xml() {
    cat <<XML
<?xml version="1.0" encoding="ISO-8859-1" ?>
<scenario name="sipsd smoke UAC">
  <send retrans="500">
    <![CDATA[
      INVITE sip:bob@127.0.0.1:$UAS SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      From: <sip:alice@127.0.0.1:[local_port]>;tag=[pid]SIPpTag00[call_number]
      To: <sip:bob@127.0.0.1:$UAS>
      Call-ID: [call_id]
      CSeq: 1 INVITE
      Contact: <sip:alice@[local_ip]:[local_port]>
      Max-Forwards: 70
      Disclose-To: proxy2.example.net
      Disclose-To: proxy1.example.net
      Content-Type: $1
      Content-Disposition: session; handling=required; filename=smime.p7m
      Content-Transfer-Encoding: base64
      Content-Length: [len]

$(cat "$2")
    ]]>
  </send>
  <recv response="100" optional="true"/>
  <recv response="180" optional="true"/>
  <recv response="200" rrs="true"/>
XML
    uac_in_dialog ACK 1
    echo '  <pause milliseconds="300"/>'
    if [ $# -ge 4 ]; then
        uac_in_dialog INFO 2 "$3" "$4"
        uac_in_dialog BYE 3
    else
        uac_in_dialog BYE 2
    fi
    echo '</scenario>'
}

uas_xml >"$work/uas.xml"
sd_start "$work/uas.out" sipp -sf "$work/uas.xml" -i 127.0.0.1 -p "$UAS" -m 1 -nostdin \
    -trace_err -timeout 30s -error_file "$work/uas-errors.log" -trace_msg \
    -message_file "$work/uas-msgs.log"
uas_pid=$SD_PID

sd_wait_bound "$P1" "$trusted_pid" "trusted proxy" "$work/trusted.log" &&
    pass "trusted proxy listening on udp:127.0.0.1:$P1 (module initialized)" ||
    die "trusted proxy did not start"
sd_wait_bound "$P2" "$untrusted_pid" "untrusted proxy" "$work/untrusted.log" &&
    pass "untrusted proxy listening on udp:127.0.0.1:$P2" || die "untrusted proxy did not start"
sd_wait_bound "$UAS" "$uas_pid" "sipp UAS" "$work/uas.out" || die "sipp UAS did not start"
grep -q 'sipsd .* ready' "$work/trusted.log" &&
    pass "module ready: $(grep -o 'sipsd [^ ]* ready.*' "$work/trusted.log" | head -n 1)"

# 3. the call: INVITE with the OpenSSL-made encrypted body, ACK, BYE
CT_AUTHENV="application/pkcs7-mime; smime-type=authEnveloped-data; name=smime.p7m"
CT_ENCDATA="application/pkcs7-mime; smime-type=encrypted-data; name=smime.p7m"
base64 -w 76 "$vectors/msgs/gcm256-oaep-callee-proxy1.der" >"$work/vector.b64"
b64len=$(sed 's/$/\r/' "$work/vector.b64" | wc -c)   # CRLF line ends as sipp sends them
uac_xml "$CT_AUTHENV" "$work/vector.b64" >"$work/uac.xml"

if sipp "127.0.0.1:$P1" -sf "$work/uac.xml" -i 127.0.0.1 -p "$UAC" -m 1 -nostdin \
    -timeout 20s -timeout_error -trace_err -error_file "$work/uac-errors.log" \
    -trace_msg -message_file "$work/uac-msgs.log" >"$work/uac.out" 2>&1; then
    pass "call completed: INVITE/200/ACK/BYE/200 through both proxies (sipp UAC exit 0)"
else
    flunk "sipp UAC failed (exit $?)"
    tail -20 "$work/uac-errors.log" 2>/dev/null
fi
sleep 0.5
call1=$(sed -n 's/^Call-ID: //p' "$work/uac-msgs.log" | head -n 1 | tr -d '\r')

# 4. what the proxies logged
sdp="$vectors/msgs/offer.sdp"
addr=$(sed -n 's/^c=IN IP[46] \([^ \r]*\).*/\1/p' "$sdp" | head -n 1 | tr -d '\r')
port=$(sed -n 's/^m=[a-z]* \([0-9]*\) .*/\1/p' "$sdp" | head -n 1)
line=$(grep -a "sipsd: pid=[0-9]* INVITE call=$call1 decrypted " "$work/trusted.log" | head -n 1)
if [ -n "$line" ]; then
    echo "      trusted proxy: ${line#*sipsd: }"
    case "$line" in
        *"media=$addr:$port"*) pass "trusted proxy decrypted the INVITE: media=$addr:$port as in the plaintext SDP" ;;
        *) flunk "decrypted INVITE shows the wrong media (want $addr:$port)" ;;
    esac
    case "$line" in
        *"gen=1 source=wrapped"*) pass "key came from the wrapped CEK (source=wrapped), generation 1" ;;
        *) flunk "unexpected generation/source in: $line" ;;
    esac
else
    flunk "no 'decrypted' log line for the INVITE in the trusted proxy"
    grep -a 'sipsd' "$work/trusted.log" | tail -5
fi
if grep -aq "sipsd: pid=[0-9]* INVITE200 call=$call1 not-decrypted code=2 " "$work/trusted.log"; then
    pass "trusted proxy: plain SDP of the 200 OK reported not-encrypted (code=2, return -2)"
else
    flunk "no not-decrypted code=2 line for the 200 OK"
fi
sent_len=$(grep -ao "untrusted: pid=[0-9]* INVITE call=$call1 body-bytes=[0-9]*" "$work/untrusted.log" | head -n 1)
if [ "$replace" = 1 ]; then
    sdplen=$(wc -c <"$sdp")
    invite_in=$(sed -n '/^INVITE /,/^$/p' "$work/uas-msgs.log" | tr -d '\r')
    if [ -n "$sent_len" ] && [ "${sent_len##*body-bytes=}" = "$sdplen" ] &&
        printf '%s\n' "$invite_in" | grep -q '^Content-Type: application/sdp$' &&
        ! printf '%s\n' "$invite_in" | grep -qi '^Content-Transfer-Encoding\|^Content-Disposition' &&
        grep -aq '^c=IN IP4 192.0.2.10' "$work/uas-msgs.log"; then
        pass "sd_replace_body(): the callee got the $sdplen-byte plaintext SDP (Content-Type: application/sdp, S/MIME headers removed)"
    else
        flunk "sd_replace_body(): untrusted proxy saw '$sent_len', expected body-bytes=$sdplen"
    fi
elif [ -n "$sent_len" ] && [ "${sent_len##*body-bytes=}" = "$b64len" ]; then
    pass "untrusted proxy got the INVITE with the same $b64len-byte encrypted body (forwarded unchanged)"
else
    flunk "untrusted proxy: '$sent_len', expected body-bytes=$b64len"
fi
if grep -aq 'untrusted: pid=[0-9]* ACK ' "$work/untrusted.log" &&
    grep -aq 'untrusted: pid=[0-9]* BYE ' "$work/untrusted.log"; then
    pass "ACK and BYE took the record-routed path through both proxies"
else
    flunk "ACK/BYE did not pass the untrusted proxy"
fi
if grep -aqE 'PCMU/8000|a=crypto|inline:' "$work/trusted.log" "$work/untrusted.log"; then
    flunk "plaintext SDP found in a proxy log"
else
    pass "no plaintext SDP or SRTP key in the proxy logs"
fi
if grep -aE 'CRITICAL|segfault|core dump' "$work/trusted.log" | grep -v 'sctp' | grep -q .; then
    flunk "critical errors in the trusted proxy log"
    grep -aE 'CRITICAL' "$work/trusted.log" | head -5
fi

# 4b. in-dialog reuse of the dialog key, if the sipsd CLI is built (cargo build --release):
# a fresh INVITE sealed for callee + proxy1, then an in-dialog INFO whose body is
# EncryptedData under the same dialog key: the proxy must read it from the shared cache
# (whichever worker process gets it), source=cache, generation 1.
cli=${SIPSD_CLI:-$root/target/release/sipsd}
expect_decrypted=1
if [ -x "$cli" ]; then
    sed 's/^m=audio 49170 /m=audio 49172 /' "$sdp" >"$work/info.sdp"
    "$cli" seal --to "$vectors/keys/callee.crt" --to "$vectors/keys/proxy1.crt" --base64 \
        --in "$sdp" --out "$work/offer.b64" --cek-out "$work/dialog.cek" >"$work/offer.hdr" &&
        "$cli" encrypt --cek "$work/dialog.cek" --base64 --in "$work/info.sdp" \
            --out "$work/info.b64" >"$work/info.hdr" || die "sipsd CLI failed"
    uas_xml info >"$work/uas2.xml"
    sd_start "$work/uas2.out" sipp -sf "$work/uas2.xml" -i 127.0.0.1 -p "$UAS" -m 1 \
        -nostdin -trace_err -timeout 30s -error_file "$work/uas2-errors.log"
    sd_wait_bound "$UAS" "$SD_PID" "second sipp UAS" "$work/uas2.out" ||
        die "second sipp UAS did not start"
    uac_xml "$CT_AUTHENV" "$work/offer.b64" "$CT_ENCDATA" "$work/info.b64" >"$work/uac2.xml"
    if sipp "127.0.0.1:$P1" -sf "$work/uac2.xml" -i 127.0.0.1 -p "$UAC" -m 1 -nostdin \
        -timeout 20s -timeout_error -trace_err -error_file "$work/uac2-errors.log" \
        -trace_msg -message_file "$work/uac2-msgs.log" >"$work/uac2.out" 2>&1; then
        pass "second call completed: INVITE (sealed by the sipsd CLI) / ACK / INFO (EncryptedData) / BYE"
    else
        flunk "second call failed"
        tail -20 "$work/uac2-errors.log" 2>/dev/null
    fi
    sleep 0.5
    call2=$(sed -n 's/^Call-ID: //p' "$work/uac2-msgs.log" | head -n 1 | tr -d '\r')
    inv=$(grep -a "sipsd: pid=[0-9]* INVITE call=$call2 " "$work/trusted.log" | head -n 1)
    info=$(grep -a "sipsd: pid=[0-9]* INFO call=$call2 " "$work/trusted.log" | head -n 1)
    echo "      trusted proxy: ${inv#*sipsd: }"
    echo "      trusted proxy: ${info#*sipsd: }"
    case "$info" in
        *" decrypted gen=1 source=cache media=$addr:49172 "*)
            ipid=$(printf '%s' "$inv" | sed 's/.*sipsd: pid=\([0-9]*\).*/\1/')
            fpid=$(printf '%s' "$info" | sed 's/.*sipsd: pid=\([0-9]*\).*/\1/')
            if [ "$ipid" != "$fpid" ]; then
                where="another worker (key stored by pid $ipid, read by pid $fpid)"
            else
                where="the same worker (pid $ipid)"
            fi
            pass "in-dialog EncryptedData read with the cached dialog key (source=cache, gen=1, port 49172) in $where"
            expect_decrypted=3
            ;;
        *) flunk "in-dialog INFO not decrypted from the cache: $info" ;;
    esac
elif [ "${SIPSD_REQUIRE_E2E:-0}" = 1 ]; then
    flunk "in-dialog check: no sipsd CLI at $cli (make tools; SIPSD_REQUIRE_E2E=1 requires it)"
else
    echo "SKIP  in-dialog check: no sipsd CLI at $cli (make tools)"
fi

if kill -0 "$trusted_pid" 2>/dev/null; then
    pass "trusted proxy still running after the calls"
else
    wait "$trusted_pid"
    flunk "trusted proxy exited (status $?)"
fi

# 5. RPC and statistics of the running proxy (ctl + kamcmd)
rpc() { sd_rpc trusted "$@"; }
stats=$(rpc sipsd.stats)
field() { printf '%s\n' "$stats" | sed -n "s/^[[:space:]]*$1:[[:space:]]*\([0-9]*\).*/\1/p" | head -n 1; }
echo "      sipsd.stats: $(printf '%s' "$stats" | tr -s ' \n\t' ' ')"
if [ "$(field decrypted)" = "$expect_decrypted" ] && [ "$(field not_encrypted)" -ge 1 ] 2>/dev/null; then
    pass "RPC sipsd.stats: decrypted=$expect_decrypted, not_encrypted=$(field not_encrypted)"
else
    flunk "RPC sipsd.stats counters unexpected"
fi
if [ "$(field dialogs_ended)" -ge 1 ] 2>/dev/null && [ "$(field cache_entries)" = 0 ]; then
    pass "dialog keys dropped after BYE by $end_how: dialogs_ended=$(field dialogs_ended), cache_entries=0"
else
    flunk "dialog key still cached after BYE (dialogs_ended=$(field dialogs_ended) cache_entries=$(field cache_entries))"
fi
st=$(rpc stats.get_statistics sipsd:)
if printf '%s' "$st" | grep -q "sipsd:decrypted = $expect_decrypted"; then
    pass "Kamailio statistics: $(printf '%s' "$st" | tr -s ' \n\t' ' ')"
else
    flunk "statistics sipsd:decrypted not $expect_decrypted: $st"
fi
if rpc sipsd.reload | grep -q 'Keys reloaded' && [ "$(rpc sipsd.stats | sed -n 's/^[[:space:]]*reloads:[[:space:]]*\([0-9]*\).*/\1/p')" = 1 ]; then
    pass "RPC sipsd.reload re-read the keys (reloads=1)"
else
    flunk "RPC sipsd.reload failed"
fi

if [ "$fail" -ne 0 ]; then
    echo "--- trusted.log (tail)"; tail -25 "$work/trusted.log"
    echo "--- untrusted.log (tail)"; tail -10 "$work/untrusted.log"
    echo "smoke: FAILED"
    exit 1
fi
echo "smoke: all checks passed"
