//! RIFF/WAVE files of 16-bit little-endian PCM, written as samples come (the header's sizes
//! are filled in by [`WavWriter::finish`]), and read back for mixing and tests.

use std::fs::File;
use std::io::{self, BufWriter, Read, Seek, SeekFrom, Write};
use std::path::Path;

/// A WAV file being written.
pub struct WavWriter {
    out: BufWriter<File>,
    samples: u64,
}

fn header(rate: u32, samples: u64) -> [u8; 44] {
    let data = (samples * 2).min(u64::from(u32::MAX - 36)) as u32;
    let mut h = [0u8; 44];
    h[0..4].copy_from_slice(b"RIFF");
    h[4..8].copy_from_slice(&(36 + data).to_le_bytes());
    h[8..12].copy_from_slice(b"WAVE");
    h[12..16].copy_from_slice(b"fmt ");
    h[16..20].copy_from_slice(&16u32.to_le_bytes());
    h[20..22].copy_from_slice(&1u16.to_le_bytes()); // PCM
    h[22..24].copy_from_slice(&1u16.to_le_bytes()); // mono
    h[24..28].copy_from_slice(&rate.to_le_bytes());
    h[28..32].copy_from_slice(&(rate * 2).to_le_bytes());
    h[32..34].copy_from_slice(&2u16.to_le_bytes());
    h[34..36].copy_from_slice(&16u16.to_le_bytes());
    h[36..40].copy_from_slice(b"data");
    h[40..44].copy_from_slice(&data.to_le_bytes());
    h
}

impl WavWriter {
    /// Creates `path` for mono samples at `rate` Hz.
    pub fn create(path: &Path, rate: u32) -> io::Result<WavWriter> {
        let mut out = BufWriter::new(File::create(path)?);
        out.write_all(&header(rate, 0))?;
        Ok(WavWriter { out, samples: 0 })
    }

    /// Appends samples.
    pub fn write(&mut self, samples: &[i16]) -> io::Result<()> {
        let mut buf = Vec::with_capacity(samples.len() * 2);
        for s in samples {
            buf.extend_from_slice(&s.to_le_bytes());
        }
        self.samples += samples.len() as u64;
        self.out.write_all(&buf)
    }

    /// Samples written so far.
    pub fn samples(&self) -> u64 {
        self.samples
    }

    /// Fills in the header and closes the file.
    pub fn finish(mut self, rate: u32) -> io::Result<u64> {
        self.out.flush()?;
        let mut f = self.out.into_inner().map_err(|e| e.into_error())?;
        f.seek(SeekFrom::Start(0))?;
        f.write_all(&header(rate, self.samples))?;
        Ok(self.samples)
    }
}

/// Reads a 16-bit PCM WAV: (sample rate, channels, interleaved samples). Chunks other than
/// `fmt ` and `data` are skipped.
pub fn read(path: &Path) -> io::Result<(u32, u16, Vec<i16>)> {
    let mut data = Vec::new();
    File::open(path)?.read_to_end(&mut data)?;
    let bad = |m: &str| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!("{}: {m}", path.display()),
        )
    };
    if data.len() < 12 || &data[0..4] != b"RIFF" || &data[8..12] != b"WAVE" {
        return Err(bad("not RIFF/WAVE"));
    }
    let (mut at, mut fmt) = (12usize, None);
    while at + 8 <= data.len() {
        let id = &data[at..at + 4];
        let mut len =
            u32::from_le_bytes(data[at + 4..at + 8].try_into().unwrap_or_default()) as usize;
        if id == b"data" && (len == 0 || len > data.len() - at - 8) {
            // A writer that was stopped before filling in the size: the data runs to the end.
            len = data.len() - at - 8;
        }
        let body = &data[at + 8..(at + 8 + len).min(data.len())];
        if id == b"fmt " && body.len() >= 16 {
            let ch = u16::from_le_bytes([body[2], body[3]]);
            let rate = u32::from_le_bytes([body[4], body[5], body[6], body[7]]);
            let bits = u16::from_le_bytes([body[14], body[15]]);
            if bits != 16 {
                return Err(bad("not 16-bit PCM"));
            }
            fmt = Some((rate, ch));
        } else if id == b"data" {
            let (rate, ch) = fmt.ok_or_else(|| bad("data before fmt"))?;
            let s = body
                .chunks_exact(2)
                .map(|c| i16::from_le_bytes([c[0], c[1]]))
                .collect();
            return Ok((rate, ch, s));
        }
        at += 8 + len + (len & 1);
    }
    Err(bad("no data chunk"))
}

#[cfg(test)]
mod tests {
    #[test]
    fn write_read() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a.wav");
        let mut w = super::WavWriter::create(&p, 8000).unwrap();
        w.write(&[1, -2, 3]).unwrap();
        w.write(&[i16::MAX, i16::MIN]).unwrap();
        assert_eq!(w.finish(8000).unwrap(), 5);
        let (rate, ch, s) = super::read(&p).unwrap();
        assert_eq!((rate, ch, s), (8000, 1, vec![1, -2, 3, i16::MAX, i16::MIN]));
        assert_eq!(std::fs::metadata(&p).unwrap().len(), 44 + 10);
        println!("  ok   WAV written incrementally, header sizes filled in, read back");
    }
}
