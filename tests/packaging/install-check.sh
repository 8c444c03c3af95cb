#!/bin/bash
# Run inside a clean container of the testbed's base image (sipsd-base:SUITE) by
# tests/packaging.rs, with the suite's .debs in /debs and the test keys in /keys (read-only):
#
#  1. apt-get install ./kamailio-sipsd-module_*.deb ./sipsd_*.deb with only Debian's archive;
#  2. what the packages put where: the module in Kamailio's module directory, the exact kamailio
#     dependency, key directories 0700, the CLI, man pages, completions, SIPp scenarios; the
#     firewall agent and the recorder, their systemd units (installed, not enabled);
#  3. a call: SIPp caller -> P1 (Kamailio, the packaged module loaded from the packaged path by
#     the packaged trusted-proxy.cfg) -> P2 (untrusted-proxy.cfg, no module) -> SIPp callee,
#     the bodies sealed by the packaged sipsd CLI for the callee and proxy1: P1 decrypts the
#     offer (wrapped key) and the in-dialog bodies (dialog key), P2 does not, the callee gets
#     the caller's body unchanged and opens it;
#  4. apt-get purge --autoremove (the packages and the libraries apt pulled in for them, e.g.
#     libsrtp2 for the recorder): every file the install added is gone (file lists before and
#     after).
# Prints one "  ok   ..." line per check; exits non-zero at the first failure.
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive

ok() { echo "  ok   $*"; }
fail() { echo "FAILED: $*" >&2; exit 1; }

snapshot() { # every path outside the volatile trees, sorted; dpkg's statoverride database
    # appears with the first override ever made (its entry is checked to be gone after purge)
    find / -xdev \( -path /proc -o -path /sys -o -path /dev -o -path /run -o -path /tmp \
        -o -path /var/lib/apt -o -path /var/cache -o -path /var/log -o -path /debs \
        -o -path /keys -o -path /var/lib/dpkg/triggers -o -path '/var/lib/dpkg/statoverride*' \) \
        -prune -o -print | sort
}

. /etc/os-release
suite=$VERSION_CODENAME
kver=$(dpkg-query -W -f='${Version}' kamailio)
apt-get -q update >/dev/null
snapshot >/tmp/before.txt

# --- 1. install -------------------------------------------------------------------------
cd /debs
apt-get -q install -y --no-install-recommends ./kamailio-sipsd-module_*.deb ./sipsd_*.deb \
    >/tmp/apt-install.log 2>&1 || { cat /tmp/apt-install.log >&2; fail "apt-get install"; }
ok "$suite: apt-get install ./kamailio-sipsd-module_*.deb ./sipsd_*.deb (Debian's archive only)"

# --- 2. files ----------------------------------------------------------------------------
multiarch=$(dpkg-architecture -qDEB_HOST_MULTIARCH 2>/dev/null || echo x86_64-linux-gnu)
kmod=/usr/lib/$multiarch/kamailio/modules
for f in "$kmod/sipsd.so" "$kmod/libsipsd.so"; do
    dpkg -S "$f" | grep -q '^kamailio-sipsd-module:' || fail "$f not from kamailio-sipsd-module"
done
ok "sipsd.so and libsipsd.so in $kmod (from kamailio-sipsd-module)"
dep=$(dpkg-query -W -f='${Depends}' kamailio-sipsd-module)
case ", $dep," in *", kamailio (= $kver),"*) ;; *) fail "Depends '$dep' lacks kamailio (= $kver)" ;; esac
ok "kamailio-sipsd-module depends on kamailio (= $kver), the installed server"
[ "$(stat -c '%a %U' /etc/sipsd/keys)" = "700 root" ] || fail "/etc/sipsd/keys is $(stat -c '%a %U' /etc/sipsd/keys)"
[ "$(stat -c '%a %U' /etc/kamailio/sipsd)" = "700 kamailio" ] ||
    fail "/etc/kamailio/sipsd is $(stat -c '%a %U' /etc/kamailio/sipsd)"
ok "key directories: /etc/sipsd/keys 0700 root, /etc/kamailio/sipsd 0700 kamailio"
sipsd --version | grep -q "^sipsd " || fail "sipsd --version"
for f in /usr/share/man/man1/sipsd.1.gz /usr/share/man/man1/sipsd-seal.1.gz \
    /usr/share/bash-completion/completions/sipsd /usr/share/zsh/vendor-completions/_sipsd \
    /usr/share/fish/vendor_completions.d/sipsd.fish /usr/share/sipsd/sipp/uac.xml \
    /usr/share/doc/kamailio-sipsd-module/README.gz \
    /usr/share/doc/kamailio-sipsd-module/examples/trusted-proxy.cfg; do
    [ -s "$f" ] || fail "$f missing"
done
zcat /usr/share/man/man1/sipsd-seal.1.gz | grep -q -- '\\-\\-cek\\-out' || fail "sipsd-seal(1) lacks --cek-out"
ok "$(sipsd --version), man pages (sipsd-seal(1) documents --cek-out), bash/zsh/fish completions, SIPp scenarios, module README, example cfgs"

# the firewall agent and the recorder: they run (the recorder links the suite's libsrtp2),
# their units are installed and enabled nowhere, their example configurations are there
sipsd-fw --version | grep -q "^sipsd-fw " || fail "sipsd-fw --version"
sipsd-rec --version | grep -q "^sipsd-rec " || fail "sipsd-rec --version"
sipsd-fw keygen /tmp/fw-proxy1.key >/dev/null && [ "$(stat -c %a /tmp/fw-proxy1.key)" = 600 ] ||
    fail "sipsd-fw keygen"
sed "s|/etc/sipsd/keys/proxy1.key|/tmp/fw-proxy1.key|" /usr/share/doc/sipsd/examples/fw.toml >/tmp/fw.toml
sipsd-fw check -c /tmp/fw.toml >/dev/null || fail "sipsd-fw check of the packaged example fw.toml"
units=
for u in sipsd-fw sipsd-rec; do
    f=$(dpkg -L sipsd | grep "/systemd/system/$u.service\$") || fail "$u.service not in the package"
    grep -q '^CapabilityBoundingSet=CAP_NET_' "$f" || fail "$f: no capability bounding set"
    ! ls /etc/systemd/system/*.wants/"$u.service" >/dev/null 2>&1 || fail "$u.service enabled by the package"
    units="$units $f"
done
[ -s /usr/share/doc/sipsd/examples/sipsd-rec.default ] || fail "sipsd-rec.default example missing"
for f in sipsd-fw sipsd-fw-run sipsd-fw-keygen sipsd-rec sipsd-rec-run sipsd-rec-audit-open; do
    [ -s "/usr/share/man/man1/$f.1.gz" ] || fail "man page $f(1) missing"
done
zcat /usr/share/man/man1/sipsd-rec-run.1.gz | grep -q -- '\\-\\-strict\\-key\\-permissions' ||
    fail "sipsd-rec-run(1) lacks --strict-key-permissions"
ok "sipsd-fw and sipsd-rec run ($(sipsd-rec --version)), their man pages, packaged fw.toml passes 'sipsd-fw check', units${units} installed, not enabled"

# --- 3. a call through the packaged module -----------------------------------------------
examples=/usr/share/doc/kamailio-sipsd-module/examples
for f in "$examples"/*.cfg.gz; do [ -e "$f" ] && gunzip -k "$f"; done
install -m 600 /keys/proxy1.key /keys/proxy1.crt /etc/kamailio/sipsd/
w=/tmp/call
mkdir -p "$w" /run/kamailio /run/kamailio-p2
pids=()
trap 'for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done' EXIT
kamailio -DD -E -f "$examples/trusted-proxy.cfg" -A P1_PORT=5071 -A 'NEXT_HOP="sip:127.0.0.1:5072"' \
    -A SIPSD_KEY_DIR=/etc/kamailio/sipsd -A WITH_DIALOG >"$w/p1.log" 2>&1 &
pids+=($!)
kamailio -DD -E -Y /run/kamailio-p2 -f "$examples/untrusted-proxy.cfg" -A P2_PORT=5072 \
    -A 'NEXT_HOP="sip:127.0.0.1:5073"' >"$w/p2.log" 2>&1 &
pids+=($!)
for _ in $(seq 100); do
    ss -lun | grep -q ':5071 ' && ss -lun | grep -q ':5072 ' && break
    sleep 0.1
done
ss -lun | grep -q ':5071 ' || { cat "$w/p1.log" >&2; fail "P1 did not start"; }
ss -lun | grep -q ':5072 ' || { cat "$w/p2.log" >&2; fail "P2 did not start"; }
grep -q "sipsd" "$w/p1.log" || true
ok "Kamailio $(kamailio -v | sed -n 's/^version: kamailio \([^ ]*\).*/\1/p') started $examples/trusted-proxy.cfg (loadmodule \"sipsd.so\" from $kmod) and untrusted-proxy.cfg"

cd "$w"
sipsd sipp-calls --calls 1 --callee-cert /keys/callee.crt --proxy-cert /keys/proxy1.crt --out-dir "$w" >/dev/null
sipp -sf /usr/share/sipsd/sipp/uas.xml -inf uas.csv -i 127.0.0.1 -p 5073 -m 1 -nostdin \
    -timeout 40s -trace_msg -message_file uas-msgs.txt >/dev/null 2>&1 &
uas=$!
pids+=($uas)
sleep 0.5
sipp 127.0.0.1:5071 -sf /usr/share/sipsd/sipp/uac.xml -inf uac.csv -i 127.0.0.1 -p 5070 -m 1 -l 1 \
    -nostdin -timeout 40s >/dev/null 2>&1 || { tail -n 30 "$w/p1.log" >&2; fail "the caller's SIPp call failed"; }
wait "$uas" || fail "the callee's SIPp failed"
ok "call (INVITE, 200, ACK, MESSAGE, re-INVITE with a rotated key, MESSAGE, BYE) completed through P1 and P2"

grep 'sipsd: ' "$w/p1.log" | sed 's/^.*sipsd: /         p1: /' | head -n 8
grep -q 'sipsd: .* INVITE call=.* decrypted gen=1 source=wrapped media=' "$w/p1.log" ||
    fail "P1 did not decrypt the offer with its wrapped key"
grep -q 'sipsd: .* MESSAGE call=.* decrypted gen=1 source=cache' "$w/p1.log" ||
    fail "P1 did not read the in-dialog MESSAGE with the dialog key"
grep -q 'sipsd: .* INVITE call=.* decrypted gen=2 source=wrapped' "$w/p1.log" ||
    fail "P1 did not take the re-INVITE's rotated key"
ok "P1 (packaged module) decrypted the offer (gen 1, wrapped key), the MESSAGE (dialog key), the rotated re-INVITE (gen 2)"
grep -q 'untrusted: .* INVITE ' "$w/p2.log" || fail "P2 saw no INVITE"
! grep -q 'decrypted' "$w/p2.log" || fail "P2 decrypted something"
ok "P2 (untrusted, no module) forwarded the bodies without reading them"
offer=$(head -n 2 uac.csv | tail -n 1 | cut -d';' -f1)
grep -q "${offer:0:64}" uas-msgs.txt || fail "the callee did not receive the caller's offer unchanged"
printf '%s' "$offer" >offer.b64
sipsd open --key /keys/callee.key:/keys/callee.crt --in offer.b64 | grep -q '^v=0' ||
    fail "the callee's key does not open the offer"
ok "the callee received the caller's S/MIME offer unchanged and opened it with its key"

for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
wait 2>/dev/null || true
pids=()

# --- 4. purge ----------------------------------------------------------------------------
rm -f /etc/kamailio/sipsd/proxy1.key /etc/kamailio/sipsd/proxy1.crt "$examples"/*.cfg.gz.cfg 2>/dev/null || true
for f in "$examples"/*.cfg.gz; do [ -e "$f" ] && rm -f "${f%.gz}"; done
apt-get -q purge -y --autoremove kamailio-sipsd-module sipsd >/tmp/apt-purge.log 2>&1 ||
    { cat /tmp/apt-purge.log >&2; fail "apt-get purge"; }
snapshot >/tmp/after.txt
if ! diff -u /tmp/before.txt /tmp/after.txt >/tmp/diff.txt; then
    cat /tmp/diff.txt >&2
    fail "apt-get purge left files behind or removed others"
fi
! dpkg-statoverride --list /etc/kamailio/sipsd >/dev/null || fail "statoverride of /etc/kamailio/sipsd left behind"
ok "apt-get purge --autoremove: the file list equals the one before the install ($(wc -l </tmp/before.txt) paths), no statoverride left"
