//! TensorBoard event files: the tfevents record framing (u64 length, masked crc32c of the
//! length, an `Event` protobuf, masked crc32c of the protobuf) around the few `Event` and
//! `Summary` fields a scalar needs, declared by hand from TensorFlow's `event.proto` and
//! `summary.proto` (field numbers and types as there, so TensorBoard's own reader decodes them).

use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use prost::Message;

/// What TensorFlow 2 writes as the first event of every file.
pub(crate) const FILE_VERSION: &str = "brain.Event:2";

/// `tensorflow.Event`, only the fields written here.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Event {
    #[prost(double, tag = "1")]
    pub wall_time: f64,
    #[prost(int64, tag = "2")]
    pub step: i64,
    #[prost(oneof = "What", tags = "3, 5")]
    pub what: Option<What>,
}

/// `Event.what`: the file-version marker or a summary.
#[derive(Clone, PartialEq, prost::Oneof)]
pub enum What {
    #[prost(string, tag = "3")]
    FileVersion(String),
    #[prost(message, tag = "5")]
    Summary(Summary),
}

/// `tensorflow.Summary`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Summary {
    #[prost(message, repeated, tag = "1")]
    pub value: Vec<SummaryValue>,
}

/// `tensorflow.Summary.Value` with a scalar (`simple_value`, of the `value` oneof).
#[derive(Clone, PartialEq, prost::Message)]
pub struct SummaryValue {
    #[prost(string, tag = "1")]
    pub tag: String,
    #[prost(float, optional, tag = "2")]
    pub simple_value: Option<f32>,
}

/// The checksum TensorFlow's record format stores: crc32c rotated right by 15 plus a constant
/// (a crc of data that holds crcs would otherwise be weak).
pub(crate) fn masked_crc32c(data: &[u8]) -> u32 {
    let crc = crc32c::crc32c(data);
    crc.rotate_right(15).wrapping_add(0xa282_ead8)
}

/// One record: length, its masked crc, the data, its masked crc.
pub fn write_record(w: &mut impl Write, data: &[u8]) -> io::Result<()> {
    let len = (data.len() as u64).to_le_bytes();
    w.write_all(&len)?;
    w.write_all(&masked_crc32c(&len).to_le_bytes())?;
    w.write_all(data)?;
    w.write_all(&masked_crc32c(data).to_le_bytes())
}

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum RecordError {
    #[error("record at byte {0} is cut short")]
    Truncated(usize),
    #[error("record at byte {0}: the length's checksum does not match")]
    LengthCrc(usize),
    #[error("record at byte {0}: the data's checksum does not match")]
    DataCrc(usize),
    #[error("record at byte {0}: not an Event protobuf: {1}")]
    Decode(usize, String),
}

/// Every record of an event file, checksums verified, decoded as `Event`s.
pub fn read_events(bytes: &[u8]) -> Result<Vec<Event>, RecordError> {
    let mut events = Vec::new();
    let mut at = 0;
    while at < bytes.len() {
        let header = bytes.get(at..at + 12).ok_or(RecordError::Truncated(at))?;
        let (len, len_crc) = header.split_at(8);
        if masked_crc32c(len) != u32::from_le_bytes(len_crc.try_into().expect("4 bytes")) {
            return Err(RecordError::LengthCrc(at));
        }
        let n = u64::from_le_bytes(len.try_into().expect("8 bytes"));
        let n = usize::try_from(n).map_err(|_| RecordError::Truncated(at))?;
        let end = (at + 12)
            .checked_add(n)
            .and_then(|e| e.checked_add(4))
            .filter(|&e| e <= bytes.len())
            .ok_or(RecordError::Truncated(at))?;
        let data = &bytes[at + 12..end - 4];
        let crc = u32::from_le_bytes(bytes[end - 4..end].try_into().expect("4 bytes"));
        if masked_crc32c(data) != crc {
            return Err(RecordError::DataCrc(at));
        }
        events.push(Event::decode(data).map_err(|e| RecordError::Decode(at, e.to_string()))?);
        at = end;
    }
    Ok(events)
}

fn now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

/// An event file being written: `events.out.tfevents.<secs>.<host>` in its directory,
/// flushed after each group of scalars so that a running TensorBoard sees every epoch as it ends.
pub(crate) struct EventWriter {
    file: BufWriter<File>,
}

impl EventWriter {
    /// Creates `dir` (and parents) and a new event file in it, starting with the version event.
    pub(crate) fn create(dir: &Path) -> io::Result<Self> {
        std::fs::create_dir_all(dir)?;
        let wall_time = now();
        let host = gethostname::gethostname().to_string_lossy().into_owned();
        let path = dir.join(format!("events.out.tfevents.{}.{host}", wall_time as u64));
        // create_new: two writers started in the same second on one host never share a file.
        let file = File::options().write(true).create_new(true).open(&path)?;
        let mut w = Self {
            file: BufWriter::new(file),
        };
        w.write(&Event {
            wall_time,
            step: 0,
            what: Some(What::FileVersion(FILE_VERSION.into())),
        })?;
        w.file.flush()?;
        Ok(w)
    }

    pub(crate) fn write(&mut self, event: &Event) -> io::Result<()> {
        write_record(&mut self.file, &event.encode_to_vec())
    }

    /// One event per scalar at `step` (as `tf.summary.scalar` writes them), then a flush.
    pub(crate) fn scalars(&mut self, step: i64, values: &[(&str, f64)]) -> io::Result<()> {
        let wall_time = now();
        for (tag, v) in values {
            self.write(&Event {
                wall_time,
                step,
                what: Some(What::Summary(Summary {
                    value: vec![SummaryValue {
                        tag: tag.to_string(),
                        simple_value: Some(*v as f32),
                    }],
                })),
            })?;
        }
        self.file.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scalar_event(step: i64, tag: &str, v: f32) -> Event {
        Event {
            wall_time: 1.5e9,
            step,
            what: Some(What::Summary(Summary {
                value: vec![SummaryValue {
                    tag: tag.into(),
                    simple_value: Some(v),
                }],
            })),
        }
    }

    #[test]
    fn masked_crc_of_known_values() {
        // crc32c("123456789") = 0xE3069283 (the standard check value); masked by hand:
        // rotr(0xE3069283, 15) = 0x2507C60D, plus 0xA282EAD8 = 0xC78AB0E5.
        assert_eq!(crc32c::crc32c(b"123456789"), 0xE306_9283);
        assert_eq!(masked_crc32c(b"123456789"), 0xC78A_B0E5);
    }

    #[test]
    fn records_round_trip_with_checksums() {
        let events = vec![
            Event {
                wall_time: 1.0,
                step: 0,
                what: Some(What::FileVersion(FILE_VERSION.into())),
            },
            scalar_event(1, "epoch_loss", 0.75),
            scalar_event(2, "epoch_accuracy", 0.5),
        ];
        let mut bytes = Vec::new();
        for e in &events {
            write_record(&mut bytes, &e.encode_to_vec()).unwrap();
        }
        assert_eq!(read_events(&bytes).unwrap(), events);
        // The layout, field by field, for the first record.
        let first = events[0].encode_to_vec();
        assert_eq!(
            u64::from_le_bytes(bytes[..8].try_into().unwrap()),
            first.len() as u64
        );
        assert_eq!(&bytes[12..12 + first.len()], &first[..]);
    }

    #[test]
    fn corrupted_or_cut_records_are_refused() {
        let mut bytes = Vec::new();
        write_record(
            &mut bytes,
            &scalar_event(1, "epoch_loss", 0.75).encode_to_vec(),
        )
        .unwrap();
        let mut bad_len = bytes.clone();
        bad_len[0] ^= 1;
        assert_eq!(read_events(&bad_len), Err(RecordError::LengthCrc(0)));
        let mut bad_data = bytes.clone();
        bad_data[14] ^= 1;
        assert_eq!(read_events(&bad_data), Err(RecordError::DataCrc(0)));
        assert_eq!(
            read_events(&bytes[..bytes.len() - 1]),
            Err(RecordError::Truncated(0))
        );
    }

    #[test]
    fn writer_starts_with_the_file_version_and_flushes_scalars() {
        let dir = tempfile::tempdir().unwrap();
        let train = dir.path().join("train");
        let mut w = EventWriter::create(&train).unwrap();
        let files: Vec<_> = std::fs::read_dir(&train).unwrap().collect();
        assert_eq!(files.len(), 1);
        let path = files[0].as_ref().unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        assert!(name.starts_with("events.out.tfevents."), "{name}");
        w.scalars(1, &[("epoch_loss", 0.5), ("epoch_accuracy", 0.25)])
            .unwrap();
        // Readable while the writer is still open: every epoch is flushed.
        let events = read_events(&std::fs::read(&path).unwrap()).unwrap();
        assert_eq!(
            events[0].what,
            Some(What::FileVersion("brain.Event:2".into()))
        );
        let scalars: Vec<(i64, String, f32)> = events[1..]
            .iter()
            .map(|e| match &e.what {
                Some(What::Summary(s)) => (
                    e.step,
                    s.value[0].tag.clone(),
                    s.value[0].simple_value.unwrap(),
                ),
                other => panic!("not a summary: {other:?}"),
            })
            .collect();
        assert_eq!(
            scalars,
            [
                (1, "epoch_loss".to_string(), 0.5),
                (1, "epoch_accuracy".to_string(), 0.25)
            ]
        );
    }
}
