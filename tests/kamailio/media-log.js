// The KEMI twin of route[MEDIA_LOG] in cfg-examples/trusted-proxy.cfg, run by app_jsdt when P1
// starts with -A WITH_MEDIA_LOG -A SIPSD_MEDIA_JS=<this file> (tests/kamailio_media.rs): every
// media stream of the decrypted SDP through KSR.sipsd.sd_get("media[i]/NAME"), one
// "sipsd-kemi-media:" line per m= line and one "sipsd-kemi-crypto:" line per a=crypto. Keys
// are never logged: only the length of their key parameters.

var MEDIA_FIELDS = ["kind", "port", "port_count", "proto", "formats", "addr", "addr_type",
    "multicast", "rtcp_port", "rtcp_addr", "rtcp_mux", "direction", "crypto_count", "rtpmap"];
var CRYPTO_FIELDS = ["tag", "suite", "session_params"];

// what xlog prints for a value: $null is <null>
function show(v) {
    return (v === null || v === undefined) ? "<null>" : String(v);
}

function sipsd_media_log(what) {
    var call = KSR.pv.get("$ci");
    var n = Number(KSR.sipsd.sd_get("media_count"));
    for (var i = 0; i < n; i++) {
        var line = "sipsd-kemi-media: call=" + call + ";what=" + what + ";i=" + i;
        for (var f = 0; f < MEDIA_FIELDS.length; f++) {
            line += ";" + MEDIA_FIELDS[f] + "=" +
                show(KSR.sipsd.sd_get("media[" + i + "]/" + MEDIA_FIELDS[f]));
        }
        KSR.info(line + "\n");
        var nc = Number(KSR.sipsd.sd_get("media[" + i + "]/crypto_count"));
        for (var j = 0; j < nc; j++) {
            var base = "media[" + i + "]/crypto[" + j + "]/";
            var c = "sipsd-kemi-crypto: call=" + call + ";what=" + what + ";i=" + i + ";j=" + j;
            for (var g = 0; g < CRYPTO_FIELDS.length; g++) {
                c += ";" + CRYPTO_FIELDS[g] + "=" + show(KSR.sipsd.sd_get(base + CRYPTO_FIELDS[g]));
            }
            var keys = KSR.sipsd.sd_get(base + "key_params");
            c += ";key_len=" + (keys === null ? 0 : String(keys).length);
            KSR.info(c + "\n");
        }
    }
    // a name the library does not know is $null (and logged by the module as an error)
    KSR.info("sipsd-kemi-sdp: call=" + call + ";what=" + what + ";media_count=" +
        show(KSR.sipsd.sd_get("media_count")) + ";bogus=" +
        show(KSR.sipsd.sd_get("media[0]/bogus")) + "\n");
    return 1;
}
