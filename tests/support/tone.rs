//! Known tones over SRTP and how a test tells them apart: ffmpeg's arguments for an SRTP
//! sender of a sine tone (G.711 μ-law, 20 ms packets), and the signal measurements (dominant
//! frequency by Goertzel, energy share, G.711 error bound, sample alignment). Shared by the
//! root package's recording test and sipsd-rec's own (tools/sipsd-rec/tests/support).

/// ffmpeg's arguments for `secs` seconds of a `freq` Hz tone as PCMU RTP (SSRC `ssrc`,
/// first sequence number `seq`), SRTP AES_CM_128_HMAC_SHA1_80 with `key` (base64 of the
/// 30-byte master key and salt, the `inline:` of a=crypto), sent from local port `lport` to
/// `dst:dport` (SRTCP from `lport + 1` to `dport + 1`). `-re`: paced in real time.
#[allow(clippy::too_many_arguments)]
pub fn ffmpeg_tx(
    freq: u32,
    secs: u32,
    ssrc: u32,
    seq: u16,
    key: &str,
    dst: &str,
    dport: u16,
    lport: u16,
) -> Vec<String> {
    vec![
        "-hide_banner".into(),
        "-nostdin".into(),
        "-loglevel".into(),
        "error".into(),
        "-re".into(),
        "-f".into(),
        "lavfi".into(),
        "-i".into(),
        format!("sine=frequency={freq}:sample_rate=8000:duration={secs}"),
        "-af".into(),
        "asetnsamples=n=160".into(),
        "-c:a".into(),
        "pcm_mulaw".into(),
        "-f".into(),
        "rtp".into(),
        "-ssrc".into(),
        ssrc.to_string(),
        "-seq".into(),
        seq.to_string(),
        "-srtp_out_suite".into(),
        "AES_CM_128_HMAC_SHA1_80".into(),
        "-srtp_out_params".into(),
        key.into(),
        format!("srtp://{dst}:{dport}?localport={lport}"),
    ]
}

/// The power of `x` (first 2 s at 8 kHz) at frequency `f` (Goertzel).
fn power_at(x: &[i16], f: f64) -> f64 {
    let w = 2.0 * std::f64::consts::PI * f / 8000.0;
    let c = 2.0 * w.cos();
    let (mut s1, mut s2) = (0.0f64, 0.0f64);
    for &v in &x[..x.len().min(16000)] {
        let s = f64::from(v) + c * s1 - s2;
        s2 = s1;
        s1 = s;
    }
    s1 * s1 + s2 * s2 - c * s1 * s2
}

/// The analysed frequencies: 100..3900 Hz in 10 Hz steps.
fn grid() -> impl Iterator<Item = f64> {
    (10..390).map(|f10| f64::from(f10 * 10))
}

/// The frequency with the most energy in `x` at 8 kHz.
pub fn dominant_freq(x: &[i16]) -> f64 {
    grid()
        .map(|f| (f, power_at(x, f)))
        .fold(
            (0.0, 0.0),
            |best, (f, p)| if p > best.1 { (f, p) } else { best },
        )
        .0
}

/// The energy share (0..1) of frequency `f` (± 20 Hz) among 100..3900 Hz.
pub fn energy_share(x: &[i16], f: f64) -> f64 {
    let (at, all) = grid().fold((0.0, 0.0), |(at, all), g| {
        let p = power_at(x, g);
        (if (g - f).abs() <= 20.0 { at + p } else { at }, all + p)
    });
    at / f64::max(all, 1e-9)
}

/// The largest mu-law reconstruction error for a 16-bit sample `x` (half the quantisation
/// step of its segment, plus one for rounding): |x|/32 + 8, from G.711's 8 segments whose
/// steps double from 8 (16-bit scale) at each segment.
pub fn mulaw_tolerance(x: i16) -> i32 {
    (i32::from(x).abs() + 132) / 16 + 2
}

/// The shift of `b` against `a` (in -max..=max samples) with the most equal samples, and that
/// count.
pub fn best_alignment(a: &[i16], b: &[i16], max: i64) -> (i64, usize) {
    let mut best = (0, 0);
    for shift in -max..=max {
        let eq = (0..a.len() as i64)
            .filter(|&i| {
                let j = i + shift;
                j >= 0 && (j as usize) < b.len() && a[i as usize] == b[j as usize]
            })
            .count();
        if eq > best.1 {
            best = (shift, eq);
        }
    }
    best
}
