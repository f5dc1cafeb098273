//! Generates the examples' small media library: images (with the `image` crate), WAV sounds
//! (with `hound`), and, when `ffmpeg` is on the PATH, videos with sound plus MP3/M4A clips. Each
//! file gets a sidecar caption for the offline demo embedder.

use crate::demo_embedder::{Caption, caption_path};
use std::path::{Path, PathBuf};
use std::process::Command;

pub struct Sample {
    pub name: &'static str,
    pub visual: &'static str,
    pub audio: &'static str,
    pub speech: &'static str,
}

impl Sample {
    fn caption(&self) -> Caption {
        Caption {
            visual: self.visual.into(),
            audio: self.audio.into(),
            speech: self.speech.into(),
        }
    }
}

pub const IMAGES: [(Sample, [u8; 3]); 3] = [
    (
        Sample {
            name: "castle_at_dusk.png",
            visual: "stone castle towers at dusk under an orange sky",
            audio: "",
            speech: "",
        },
        [200, 110, 40],
    ),
    (
        Sample {
            name: "forest_trail.jpg",
            visual: "green forest trail between tall trees",
            audio: "",
            speech: "",
        },
        [40, 140, 60],
    ),
    (
        Sample {
            name: "ocean_sunset.webp",
            visual: "red sunset over the calm ocean waves",
            audio: "",
            speech: "",
        },
        [220, 60, 70],
    ),
];

pub const SOUNDS: [(Sample, f32); 3] = [
    (
        Sample {
            name: "war_drums.wav",
            visual: "",
            audio: "war drums pounding a battle rhythm",
            speech: "",
        },
        80.0,
    ),
    (
        Sample {
            name: "birdsong.wav",
            visual: "",
            audio: "birds chirping in a quiet forest morning",
            speech: "",
        },
        2400.0,
    ),
    (
        Sample {
            name: "engine_roar.wav",
            visual: "",
            audio: "car engine roar and screeching tyres",
            speech: "",
        },
        140.0,
    ),
];

/// Videos and compressed audio, made with ffmpeg: (sample, lavfi video source or "" for audio
/// only, tone frequency).
pub const FFMPEG_SAMPLES: [(Sample, &str, u32); 5] = [
    (
        Sample {
            name: "castle_siege.mp4",
            visual: "knights storming a stone castle gate in battle",
            audio: "war drums and clashing swords",
            speech: "charge the castle gates",
        },
        "testsrc=size=160x120:rate=10",
        110,
    ),
    (
        Sample {
            name: "city_car_chase.mov",
            visual: "red car chase through city streets at night",
            audio: "car engine roar and police sirens",
            speech: "stop that car",
        },
        "color=c=darkred:size=160x120:rate=10",
        300,
    ),
    (
        Sample {
            name: "beach_waves.mp4",
            visual: "calm ocean waves on a sandy beach at sunset",
            audio: "gentle waves and seagulls",
            speech: "",
        },
        "color=c=skyblue:size=160x120:rate=10",
        520,
    ),
    (
        Sample {
            name: "rain_ambience.mp3",
            visual: "",
            audio: "steady rain falling on a roof",
            speech: "",
        },
        "",
        700,
    ),
    (
        Sample {
            name: "crowd_cheer.m4a",
            visual: "",
            audio: "stadium crowd cheering",
            speech: "what a goal",
        },
        "",
        900,
    ),
];

/// Writes the library into `dir` (skipping files already there) and returns the media paths.
/// Videos and MP3/M4A need ffmpeg; without it they are skipped with a message.
pub fn generate(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    std::fs::create_dir_all(dir)?;
    let mut paths = Vec::new();
    for (sample, rgb) in &IMAGES {
        let path = dir.join(sample.name);
        if !path.exists() {
            let img = image::RgbImage::from_fn(128, 96, |x, y| {
                let shade = ((x + y) % 32) as u8;
                image::Rgb([
                    rgb[0].saturating_add(shade),
                    rgb[1].saturating_add(shade / 2),
                    rgb[2],
                ])
            });
            img.save(&path).map_err(std::io::Error::other)?;
        }
        write_caption(&path, sample)?;
        paths.push(path);
    }
    for (sample, freq) in &SOUNDS {
        let path = dir.join(sample.name);
        if !path.exists() {
            let spec = hound::WavSpec {
                channels: 1,
                sample_rate: 8000,
                bits_per_sample: 16,
                sample_format: hound::SampleFormat::Int,
            };
            let mut w = hound::WavWriter::create(&path, spec).map_err(std::io::Error::other)?;
            for i in 0..(8000 * 3) {
                let t = i as f32 / 8000.0;
                let s = (t * freq * std::f32::consts::TAU).sin() * 0.4 * i16::MAX as f32;
                w.write_sample(s as i16).map_err(std::io::Error::other)?;
            }
            w.finalize().map_err(std::io::Error::other)?;
        }
        write_caption(&path, sample)?;
        paths.push(path);
    }
    let have_ffmpeg = Command::new("ffmpeg")
        .arg("-version")
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    if !have_ffmpeg {
        println!(
            "  (ffmpeg not found: skipping the video and MP3/M4A samples; `apt-get install ffmpeg` adds them)"
        );
        return Ok(paths);
    }
    for (sample, video, freq) in &FFMPEG_SAMPLES {
        let path = dir.join(sample.name);
        if !path.exists() {
            let mut cmd = Command::new("ffmpeg");
            cmd.args(["-y", "-loglevel", "error"]);
            if !video.is_empty() {
                cmd.args(["-f", "lavfi", "-i", &format!("{video}:duration=4")]);
            }
            cmd.args([
                "-f",
                "lavfi",
                "-i",
                &format!("sine=frequency={freq}:duration=4"),
            ]);
            if !video.is_empty() {
                cmd.args(["-c:v", "mpeg4", "-pix_fmt", "yuv420p"]);
            }
            cmd.args([
                "-c:a",
                if sample.name.ends_with(".mp3") {
                    "libmp3lame"
                } else {
                    "aac"
                },
            ]);
            cmd.args(["-shortest"]).arg(&path);
            let out = cmd.output()?;
            if !out.status.success() {
                println!(
                    "  (ffmpeg could not make {}: {})",
                    sample.name,
                    String::from_utf8_lossy(&out.stderr).trim()
                );
                continue;
            }
        }
        write_caption(&path, sample)?;
        paths.push(path);
    }
    Ok(paths)
}

fn write_caption(path: &Path, sample: &Sample) -> std::io::Result<()> {
    std::fs::write(caption_path(path), sample.caption().to_text())
}
