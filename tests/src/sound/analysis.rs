//! What a recording held, judged as a listener would: when sound started and ended, how
//! much of it was heard, where it dropped out, and the tone it carried. In Rust, so that no
//! test needs numpy; unit-tested on synthetic signals.

use super::{frames_in, rounded, CHANNELS, RATE};

/// The length of the windows [`analyse`] judges loud or silent: 5 ms.
pub const WINDOW_FRAMES: usize = 240;
/// A window is loud when its RMS is above this fraction of full scale (-40 dBFS).
pub const LOUD_RMS: f64 = 0.01;
/// A dropout is at least this many silent windows in a row (15 ms) inside the heard
/// span: every gap of 20 ms or more holds three whole windows, no gap under 15 ms does.
pub const DROPOUT_WINDOWS: usize = 3;

/// What a recording held.
#[derive(Clone, Debug, PartialEq)]
pub struct Heard {
    /// The length of the recording, seconds.
    pub seconds_recorded: f64,
    /// Loud windows, in seconds.
    pub seconds_heard: f64,
    /// When the first loud window starts, seconds into the recording.
    pub start: Option<f64>,
    /// When the last loud window ends, seconds into the recording.
    pub end: Option<f64>,
    /// The strongest frequency in the longest stretch without a silent window, Hz (to
    /// about 0.1 Hz).
    pub frequency: Option<f64>,
    /// The RMS of the loud windows, as a fraction of full scale.
    pub rms: f64,
    /// The silent gaps between start and end ([`DROPOUT_WINDOWS`] or more): where each
    /// starts and how long it is, seconds.
    pub dropouts: Vec<(f64, f64)>,
}

impl std::fmt::Display for Heard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let hz = self
            .frequency
            .map_or_else(|| "no tone".to_owned(), |hz| format!("{hz:.1} Hz"));
        let at = |t: Option<f64>| t.map_or_else(|| "-".to_owned(), |t| format!("{t:.3} s"));
        write!(
            f,
            "{hz}, {:.3} s heard of {:.3} s recorded (from {} to {}), RMS {:.3} of full scale, {} dropout(s) {:?}",
            self.seconds_heard,
            self.seconds_recorded,
            at(self.start),
            at(self.end),
            self.rms,
            self.dropouts.len(),
            self.dropouts
        )
    }
}

/// Analyses interleaved stereo S16 `samples` at [`RATE`] (the channels averaged): which
/// 5 ms windows are loud, the heard span from the first to the last loud window, the
/// dropouts in it, and the dominant frequency in the middle of its longest stretch of loud
/// windows, away from the phase jumps at gaps (a Goertzel scan: 10 Hz steps from 20 Hz to
/// 20 kHz over 0.1 s, then 0.1 Hz steps around the peak over up to 1 s, with a Hann
/// window, refined by a parabola through the peak).
pub fn analyse(samples: &[i16]) -> Heard {
    let mono: Vec<f64> = samples
        .chunks_exact(CHANNELS)
        .map(|frame| frame.iter().map(|&s| f64::from(s)).sum::<f64>() / (32768.0 * 2.0))
        .collect();
    let window_seconds = WINDOW_FRAMES as f64 / f64::from(RATE);
    let loud: Vec<bool> = mono
        .chunks(WINDOW_FRAMES)
        .map(|w| rms(w) > LOUD_RMS)
        .collect();
    let first = loud.iter().position(|&l| l);
    let last = loud.iter().rposition(|&l| l);
    let seconds_recorded = mono.len() as f64 / f64::from(RATE);
    let (Some(first), Some(last)) = (first, last) else {
        return Heard {
            seconds_recorded,
            seconds_heard: 0.0,
            start: None,
            end: None,
            frequency: None,
            rms: 0.0,
            dropouts: Vec::new(),
        };
    };
    let mut dropouts = Vec::new();
    // The longest stretch of loud windows: where it starts, how many.
    let mut longest = (first, 0);
    let (mut silent_run, mut loud_run) = (0, 0);
    for (i, &l) in loud.iter().enumerate().take(last + 1).skip(first) {
        if l {
            if silent_run >= DROPOUT_WINDOWS {
                dropouts.push((
                    (i - silent_run) as f64 * window_seconds,
                    silent_run as f64 * window_seconds,
                ));
            }
            silent_run = 0;
            loud_run += 1;
            if loud_run > longest.1 {
                longest = (i + 1 - loud_run, loud_run);
            }
        } else {
            silent_run += 1;
            loud_run = 0;
        }
    }
    let loud_samples: Vec<f64> = mono
        .chunks(WINDOW_FRAMES)
        .zip(&loud)
        .filter(|(_, &l)| l)
        .flat_map(|(w, _)| w.iter().copied())
        .collect();
    let stretch =
        &mono[longest.0 * WINDOW_FRAMES..((longest.0 + longest.1) * WINDOW_FRAMES).min(mono.len())];
    Heard {
        seconds_recorded,
        seconds_heard: loud.iter().filter(|&&l| l).count() as f64 * window_seconds,
        start: Some(first as f64 * window_seconds),
        end: Some(((last + 1) as f64 * window_seconds).min(seconds_recorded)),
        frequency: dominant_frequency(stretch),
        rms: rms(&loud_samples),
        dropouts,
    }
}

/// The root mean square of `samples` (0 for none).
fn rms(samples: &[f64]) -> f64 {
    if samples.is_empty() {
        return 0.0;
    }
    (samples.iter().map(|s| s * s).sum::<f64>() / samples.len() as f64).sqrt()
}

/// The strongest frequency in `signal` (at [`RATE`]), or none when it is shorter than 10 ms.
fn dominant_frequency(signal: &[f64]) -> Option<f64> {
    let rate = f64::from(RATE);
    if signal.len() < frames_in(0.01) {
        return None;
    }
    // The middle of the signal: away from any fade in or out.
    let middle = |len: usize| {
        let len = len.min(signal.len());
        let from = (signal.len() - len) / 2;
        hann(&signal[from..from + len])
    };
    let coarse = middle(frames_in(0.1));
    let (i, powers) = scan(&coarse, 20.0, 20_000.0, 10.0)?;
    let peak = powers[i].0;
    let fine = middle(frames_in(1.0));
    let step = 0.1;
    let (i, powers) = scan(&fine, (peak - 15.0).max(1.0), peak + 15.0, step)?;
    let at = powers[i].0;
    // A parabola through the peak and its neighbours.
    let refined = if i > 0 && i + 1 < powers.len() {
        let (a, b, c) = (powers[i - 1].1, powers[i].1, powers[i + 1].1);
        let denominator = a - 2.0 * b + c;
        if denominator.abs() > f64::EPSILON {
            at + step * 0.5 * (a - c) / denominator
        } else {
            at
        }
    } else {
        at
    };
    (refined > 0.0 && refined < rate / 2.0).then_some(refined)
}

/// `signal` times a Hann window.
fn hann(signal: &[f64]) -> Vec<f64> {
    let n = signal.len().max(2) as f64 - 1.0;
    signal
        .iter()
        .enumerate()
        .map(|(i, s)| s * (0.5 - 0.5 * (2.0 * std::f64::consts::PI * i as f64 / n).cos()))
        .collect()
}

/// The power of `signal` at frequencies from `from` to `to` Hz in `step`s (Goertzel): every
/// (frequency, power), and the index of the strongest; none when all are silent.
fn scan(signal: &[f64], from: f64, to: f64, step: f64) -> Option<(usize, Vec<(f64, f64)>)> {
    let powers: Vec<(f64, f64)> = (0..=rounded((to - from) / step))
        .map(|i| {
            let f = from + i as f64 * step;
            (f, goertzel(signal, f))
        })
        .collect();
    let (best, &(_, power)) = powers
        .iter()
        .enumerate()
        .max_by(|a, b| a.1 .1.total_cmp(&b.1 .1))?;
    (power > 0.0).then_some((best, powers))
}

/// The power of `signal` (at [`RATE`]) at `frequency` Hz.
fn goertzel(signal: &[f64], frequency: f64) -> f64 {
    let coefficient = 2.0 * (2.0 * std::f64::consts::PI * frequency / f64::from(RATE)).cos();
    let (mut s1, mut s2) = (0.0, 0.0);
    for &x in signal {
        let s = x + coefficient * s1 - s2;
        s2 = s1;
        s1 = s;
    }
    s1 * s1 + s2 * s2 - coefficient * s1 * s2
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sound::tone;

    /// `seconds` of silence, interleaved stereo.
    fn silence(seconds: f64) -> Vec<i16> {
        vec![0; frames_in(seconds) * CHANNELS]
    }

    #[test]
    fn a_440_hz_tone_with_a_50_ms_gap_is_440_hz_with_one_dropout() {
        let mut signal = silence(0.5);
        signal.extend(tone(440.0, 2.0));
        signal.extend(silence(0.05));
        signal.extend(tone(440.0, 1.5));
        signal.extend(silence(0.5));
        let heard = analyse(&signal);
        let hz = heard.frequency.expect("a tone");
        assert!((hz - 440.0).abs() < 0.2, "{heard}");
        assert!((heard.seconds_heard - 3.5).abs() < 0.02, "{heard}");
        assert_eq!(heard.dropouts.len(), 1, "{heard}");
        let (at, length) = heard.dropouts[0];
        assert!(
            (at - 2.5).abs() < 0.01 && (length - 0.05).abs() < 0.01,
            "{heard}"
        );
        assert!(
            (heard.start.expect("a start") - 0.5).abs() < 0.01,
            "{heard}"
        );
        assert!((heard.end.expect("an end") - 4.05).abs() < 0.01, "{heard}");
        assert!((heard.seconds_recorded - 4.55).abs() < 0.001, "{heard}");
        // Half of full scale: an RMS of 0.5/sqrt(2).
        assert!((heard.rms - 0.3536).abs() < 0.01, "{heard}");
    }

    #[test]
    fn a_gap_under_15_ms_is_no_dropout() {
        let mut signal = tone(660.0, 1.0);
        signal.extend(silence(0.01));
        signal.extend(tone(660.0, 1.0));
        let heard = analyse(&signal);
        assert!(heard.dropouts.is_empty(), "{heard}");
        assert!(
            (heard.frequency.expect("a tone") - 660.0).abs() < 0.2,
            "{heard}"
        );
    }

    #[test]
    fn a_quiet_tone_among_noise_is_still_found() {
        // 1 kHz at a twentieth of the guest's level, plus a little pseudo-random noise.
        let mut x: u32 = 12345;
        let signal: Vec<i16> = tone(1000.0, 1.0)
            .into_iter()
            .map(|s| {
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                let noise = i16::try_from(x % 201).unwrap_or(0) - 100;
                s / 20 + noise
            })
            .collect();
        let heard = analyse(&signal);
        assert!(
            (heard.frequency.expect("a tone") - 1000.0).abs() < 0.2,
            "{heard}"
        );
        assert!((heard.seconds_heard - 1.0).abs() < 0.01, "{heard}");
    }

    #[test]
    fn silence_is_nothing_heard() {
        let heard = analyse(&silence(1.0));
        assert_eq!(heard.frequency, None);
        assert_eq!(heard.seconds_heard, 0.0);
        assert_eq!(heard.start, None);
        assert!(heard.dropouts.is_empty());
    }
}
