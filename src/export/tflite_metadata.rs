//! TFLite Support metadata (tflite-support `metadata_schema.fbs`, file identifier `M001`): the
//! `TFLITE_METADATA` buffer that the Task Library and MediaPipe read for an image classifier's
//! input normalisation and labels, filled the way TFLite Model Maker's image classifier writer
//! (`metadata_writers/image_classifier.py`, `metadata_info.py`) fills it.

use flatbuffers::{FlatBufferBuilder, TableFinishedWIPOffset, VOffsetT, WIPOffset};

/// `Model.metadata` name of the buffer (tflite-support `MetadataPopulator.METADATA_FIELD_NAME`).
pub const METADATA_NAME: &str = "TFLITE_METADATA";
pub const FILE_IDENTIFIER: &str = "M001";
/// Only fields of schema 1.0.0 are written (metadata_version.cc: nothing newer is used).
pub const MIN_PARSER_VERSION: &str = "1.0.0";

// Field ids, in declaration order in metadata_schema.fbs.
mod id {
    // ModelMetadata
    pub const MODEL_NAME: usize = 0;
    pub const MODEL_DESCRIPTION: usize = 1;
    pub const MODEL_VERSION: usize = 2;
    pub const MODEL_SUBGRAPH_METADATA: usize = 3;
    pub const MODEL_AUTHOR: usize = 4;
    pub const MODEL_LICENSE: usize = 5;
    pub const MODEL_MIN_PARSER_VERSION: usize = 7;
    // SubGraphMetadata
    pub const SUBGRAPH_NAME: usize = 0;
    pub const SUBGRAPH_INPUTS: usize = 2;
    pub const SUBGRAPH_OUTPUTS: usize = 3;
    // TensorMetadata
    pub const TENSOR_NAME: usize = 0;
    pub const TENSOR_DESCRIPTION: usize = 1;
    pub const TENSOR_CONTENT: usize = 3;
    pub const TENSOR_PROCESS_UNITS: usize = 4;
    pub const TENSOR_STATS: usize = 5;
    pub const TENSOR_ASSOCIATED_FILES: usize = 6;
    // Content (a union takes two ids: its type, then its value)
    pub const CONTENT_PROPERTIES_TYPE: usize = 0;
    pub const CONTENT_PROPERTIES: usize = 1;
    // ImageProperties
    pub const IMAGE_COLOR_SPACE: usize = 0;
    // ProcessUnit
    pub const PROCESS_UNIT_OPTIONS_TYPE: usize = 0;
    pub const PROCESS_UNIT_OPTIONS: usize = 1;
    // NormalizationOptions
    pub const NORMALIZATION_MEAN: usize = 0;
    pub const NORMALIZATION_STD: usize = 1;
    // Stats
    pub const STATS_MAX: usize = 0;
    pub const STATS_MIN: usize = 1;
    // AssociatedFile
    pub const FILE_NAME: usize = 0;
    pub const FILE_DESCRIPTION: usize = 1;
    pub const FILE_TYPE: usize = 2;
}

// Union tags and enum values.
pub const CONTENT_FEATURE_PROPERTIES: u8 = 1;
pub const CONTENT_IMAGE_PROPERTIES: u8 = 2;
pub const COLOR_SPACE_RGB: i8 = 1;
pub const PROCESS_UNIT_NORMALIZATION: u8 = 1;
pub const FILE_TENSOR_AXIS_LABELS: i8 = 2;

/// What an exported image model says about itself.
#[derive(Clone, Debug, PartialEq)]
pub struct ImageModelMetadata {
    pub name: String,
    pub description: String,
    pub version: String,
    pub author: String,
    pub license: String,
    pub input: InputImage,
    pub output: Output,
}

/// The input image tensor: RGB, `(pixel - mean) / std` per channel, and the range of the
/// values the tensor holds (float: the normalised pixels 0 and 255; uint8: 0 and 255).
#[derive(Clone, Debug, PartialEq)]
pub struct InputImage {
    pub name: String,
    pub description: String,
    pub mean: f32,
    pub std: f32,
    pub range: (f32, f32),
}

#[derive(Clone, Debug, PartialEq)]
pub struct Output {
    pub name: String,
    pub description: String,
    /// Min / max of the values (probabilities: 0 and 1); None: left out.
    pub range: Option<(f32, f32)>,
    /// The labels file (`labels.txt`) annotating the last axis, when the output is per class.
    pub labels_file: Option<String>,
}

type Table = WIPOffset<TableFinishedWIPOffset>;

fn slot(id: usize) -> VOffsetT {
    (4 + 2 * id) as VOffsetT
}

fn stats(fbb: &mut FlatBufferBuilder, min: f32, max: f32) -> Table {
    let max = fbb.create_vector(&[max]);
    let min = fbb.create_vector(&[min]);
    let start = fbb.start_table();
    fbb.push_slot_always(slot(id::STATS_MAX), max);
    fbb.push_slot_always(slot(id::STATS_MIN), min);
    fbb.end_table(start)
}

fn content(fbb: &mut FlatBufferBuilder, tag: u8, properties: Table) -> Table {
    let start = fbb.start_table();
    fbb.push_slot(slot(id::CONTENT_PROPERTIES_TYPE), tag, 0);
    fbb.push_slot_always(slot(id::CONTENT_PROPERTIES), properties);
    fbb.end_table(start)
}

fn input_tensor(fbb: &mut FlatBufferBuilder, input: &InputImage) -> Table {
    let name = fbb.create_string(&input.name);
    let description = fbb.create_string(&input.description);
    let start = fbb.start_table();
    fbb.push_slot(slot(id::IMAGE_COLOR_SPACE), COLOR_SPACE_RGB, 0);
    let image = fbb.end_table(start);
    let content = content(fbb, CONTENT_IMAGE_PROPERTIES, image);
    let mean = fbb.create_vector(&[input.mean]);
    let std = fbb.create_vector(&[input.std]);
    let start = fbb.start_table();
    fbb.push_slot_always(slot(id::NORMALIZATION_MEAN), mean);
    fbb.push_slot_always(slot(id::NORMALIZATION_STD), std);
    let normalization = fbb.end_table(start);
    let start = fbb.start_table();
    fbb.push_slot(
        slot(id::PROCESS_UNIT_OPTIONS_TYPE),
        PROCESS_UNIT_NORMALIZATION,
        0,
    );
    fbb.push_slot_always(slot(id::PROCESS_UNIT_OPTIONS), normalization);
    let unit = fbb.end_table(start);
    let units = fbb.create_vector(&[unit]);
    let stats = stats(fbb, input.range.0, input.range.1);
    let start = fbb.start_table();
    fbb.push_slot_always(slot(id::TENSOR_NAME), name);
    fbb.push_slot_always(slot(id::TENSOR_DESCRIPTION), description);
    fbb.push_slot_always(slot(id::TENSOR_CONTENT), content);
    fbb.push_slot_always(slot(id::TENSOR_PROCESS_UNITS), units);
    fbb.push_slot_always(slot(id::TENSOR_STATS), stats);
    fbb.end_table(start)
}

fn output_tensor(fbb: &mut FlatBufferBuilder, output: &Output) -> Table {
    let name = fbb.create_string(&output.name);
    let description = fbb.create_string(&output.description);
    let start = fbb.start_table();
    let feature = fbb.end_table(start);
    let content = content(fbb, CONTENT_FEATURE_PROPERTIES, feature);
    let stats = output.range.map(|(min, max)| stats(fbb, min, max));
    let files = output.labels_file.as_ref().map(|file| {
        let name = fbb.create_string(file);
        let description = fbb.create_string("Labels for categories that the model can recognize.");
        let start = fbb.start_table();
        fbb.push_slot_always(slot(id::FILE_NAME), name);
        fbb.push_slot_always(slot(id::FILE_DESCRIPTION), description);
        fbb.push_slot(slot(id::FILE_TYPE), FILE_TENSOR_AXIS_LABELS, 0);
        let f = fbb.end_table(start);
        fbb.create_vector(&[f])
    });
    let start = fbb.start_table();
    fbb.push_slot_always(slot(id::TENSOR_NAME), name);
    fbb.push_slot_always(slot(id::TENSOR_DESCRIPTION), description);
    fbb.push_slot_always(slot(id::TENSOR_CONTENT), content);
    if let Some(s) = stats {
        fbb.push_slot_always(slot(id::TENSOR_STATS), s);
    }
    if let Some(f) = files {
        fbb.push_slot_always(slot(id::TENSOR_ASSOCIATED_FILES), f);
    }
    fbb.end_table(start)
}

impl ImageModelMetadata {
    /// The `ModelMetadata` flatbuffer (identifier `M001`) with one subgraph.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut fbb = FlatBufferBuilder::with_capacity(4096);
        let input = input_tensor(&mut fbb, &self.input);
        let output = output_tensor(&mut fbb, &self.output);
        let inputs = fbb.create_vector(&[input]);
        let outputs = fbb.create_vector(&[output]);
        let sg_name = fbb.create_string(&self.name);
        let start = fbb.start_table();
        fbb.push_slot_always(slot(id::SUBGRAPH_NAME), sg_name);
        fbb.push_slot_always(slot(id::SUBGRAPH_INPUTS), inputs);
        fbb.push_slot_always(slot(id::SUBGRAPH_OUTPUTS), outputs);
        let subgraph = fbb.end_table(start);
        let subgraphs = fbb.create_vector(&[subgraph]);
        let name = fbb.create_string(&self.name);
        let description = fbb.create_string(&self.description);
        let version = fbb.create_string(&self.version);
        let author = fbb.create_string(&self.author);
        let license = fbb.create_string(&self.license);
        let min_parser = fbb.create_string(MIN_PARSER_VERSION);
        let start = fbb.start_table();
        fbb.push_slot_always(slot(id::MODEL_NAME), name);
        fbb.push_slot_always(slot(id::MODEL_DESCRIPTION), description);
        fbb.push_slot_always(slot(id::MODEL_VERSION), version);
        fbb.push_slot_always(slot(id::MODEL_SUBGRAPH_METADATA), subgraphs);
        fbb.push_slot_always(slot(id::MODEL_AUTHOR), author);
        fbb.push_slot_always(slot(id::MODEL_LICENSE), license);
        fbb.push_slot_always(slot(id::MODEL_MIN_PARSER_VERSION), min_parser);
        let root = fbb.end_table(start);
        fbb.finish(root, Some(FILE_IDENTIFIER));
        fbb.finished_data().to_vec()
    }
}
