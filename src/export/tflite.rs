//! The folded network as a float32 `.tflite` in the operator sequence of the 2018 release files:
//! `CONV_2D`, 13 x (`DEPTHWISE_CONV_2D`, `CONV_2D`) with ReLU6 fused and SAME padding,
//! `AVERAGE_POOL_2D`, the logits `CONV_2D`, `SQUEEZE`, `SOFTMAX` (a feature-vector export stops
//! after the pooling and a `SQUEEZE` to [N, C]). The release files squeeze where one might expect
//! a `RESHAPE` (mobilenet_v1_0.25_128.tflite: `SQUEEZE`, squeeze_dims [1, 2]). Input
//! `[1, H, W, 3]` in [-1, 1] as in the release files, batch dynamic in the shape signature; then the Model Maker style metadata buffer and
//! `labels.txt` in a zip appended to the flatbuffer, as tflite-support's `MetadataPopulator` does.

use std::io::{Cursor, Seek, SeekFrom, Write};

use super::network::FoldedNetwork;
use super::tflite_metadata::{self, ImageModelMetadata, InputImage, Output};
use super::tflite_writer::{Buffer, Options, Tensor, TfliteModel};
use super::ExportInfo;
use crate::model::arch::{LayerKind, SCOPE};
use crate::weights::tflite::schema::*;

/// The associated file holding one class name per line, in output order.
pub const LABELS_FILE: &str = "labels.txt";
/// `Model.metadata` entry that TF's converter adds: the oldest TFLite runtime that runs every
/// operator at its version (all version 1 here: TFLite 1.5), a 16-byte zero-padded string.
const MIN_RUNTIME_NAME: &str = "min_runtime_version";
const MIN_RUNTIME_VERSION: &str = "1.5.0";

fn f32_bytes(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

struct Graph {
    model: TfliteModel,
}

impl Graph {
    /// An activation tensor: batch 1 in the shape, dynamic (-1) in the signature.
    fn activation(&mut self, name: String, shape: Vec<usize>) -> i32 {
        let shape: Vec<i32> = shape.iter().map(|&d| d as i32).collect();
        let mut signature = shape.clone();
        signature[0] = -1;
        self.model.tensor(Tensor {
            name,
            shape,
            shape_signature: Some(signature),
            dtype: TENSOR_FLOAT32,
            buffer: 0,
        })
    }

    fn constant(&mut self, name: String, shape: Vec<usize>, data: Vec<u8>) -> i32 {
        let buffer = self.model.buffer(Buffer::Data(data));
        self.model.tensor(Tensor {
            name,
            shape: shape.iter().map(|&d| d as i32).collect(),
            shape_signature: None,
            dtype: TENSOR_FLOAT32,
            buffer,
        })
    }

    fn op(&mut self, code: i32, inputs: Vec<i32>, outputs: Vec<i32>, options: Options) {
        self.model.op(code, inputs, outputs, options);
    }
}

/// The graph alone (no metadata) for an `h` x `w` input.
pub fn graph(net: &FoldedNetwork, h: usize, w: usize, description: &str) -> TfliteModel {
    let mut g = Graph {
        model: TfliteModel::new(),
    };
    g.model.description = Some(description.to_string());
    g.model.subgraph_name = Some("main".into());
    let input = g.activation("input".into(), vec![1, h, w, 3]);
    let (mut x, mut size) = (input, (h, w));
    for l in &net.layers {
        let layer = &l.layer;
        let (cin, cout, k) = (layer.in_channels, layer.out_channels, layer.kernel());
        let scope = format!("{SCOPE}/{}", layer.name);
        let (code, filter, options) = match layer.kind {
            // [kh, kw, C, 1] and TFLite's [1, kh, kw, C] hold the same element order.
            LayerKind::Depthwise => (
                DEPTHWISE_CONV_2D,
                g.constant(
                    format!("{scope}/depthwise_weights"),
                    vec![1, k, k, cout],
                    f32_bytes(&l.filter),
                ),
                Options::DepthwiseConv2D {
                    padding: PADDING_SAME,
                    stride: (layer.stride as i32, layer.stride as i32),
                    depth_multiplier: Some(1),
                    activation: ACT_RELU6,
                    dilation: (1, 1),
                },
            ),
            LayerKind::Conv | LayerKind::Pointwise => (
                CONV_2D,
                g.constant(
                    format!("{scope}/weights"),
                    vec![cout, k, k, cin],
                    f32_bytes(&hwio_to_ohwi(&l.filter, k * k * cin, cout)),
                ),
                Options::Conv2D {
                    padding: PADDING_SAME,
                    stride: (layer.stride as i32, layer.stride as i32),
                    activation: ACT_RELU6,
                    dilation: (1, 1),
                },
            ),
        };
        let bias = g.constant(format!("{scope}/biases"), vec![cout], f32_bytes(&l.bias));
        size = (size.0.div_ceil(layer.stride), size.1.div_ceil(layer.stride));
        let y = g.activation(
            format!("{SCOPE}/{SCOPE}/{}/Relu6", layer.name),
            vec![1, size.0, size.1, cout],
        );
        g.op(code, vec![x, filter, bias], vec![y], options);
        x = y;
    }
    // The release files pool with one window over the whole final map (VALID, AvgPool_1a).
    let c = net.feature_dim();
    let pooled = g.activation(
        format!("{SCOPE}/Logits/AvgPool_1a/AvgPool"),
        vec![1, 1, 1, c],
    );
    g.op(
        AVERAGE_POOL_2D,
        vec![x],
        vec![pooled],
        Options::Pool2D {
            padding: PADDING_VALID,
            stride: (2, 2),
            filter: (size.1 as i32, size.0 as i32),
            activation: ACT_NONE,
        },
    );
    let (x, width, squeeze_name) = match &net.classifier {
        Some(cls) => {
            let k = cls.classes();
            let scope = format!("{SCOPE}/Logits/Conv2d_1c_1x1");
            let filter = g.constant(
                format!("{scope}/weights"),
                vec![k, 1, 1, c],
                f32_bytes(&hwio_to_ohwi(&cls.weights, c, k)),
            );
            let bias = g.constant(format!("{scope}/biases"), vec![k], f32_bytes(&cls.biases));
            let logits = g.activation(format!("{scope}/BiasAdd"), vec![1, 1, 1, k]);
            g.op(
                CONV_2D,
                vec![pooled, filter, bias],
                vec![logits],
                Options::Conv2D {
                    padding: PADDING_SAME,
                    stride: (1, 1),
                    activation: ACT_NONE,
                    dilation: (1, 1),
                },
            );
            (logits, k, format!("{SCOPE}/Logits/SpatialSqueeze"))
        }
        None => (pooled, c, "feature_vector".to_string()),
    };
    // The release files' SpatialSqueeze: [N, 1, 1, W] -> [N, W], whatever N is.
    let squeezed = g.activation(squeeze_name, vec![1, width]);
    g.op(
        SQUEEZE,
        vec![x],
        vec![squeezed],
        Options::Squeeze {
            squeeze_dims: vec![1, 2],
        },
    );
    let output = if net.classifier.is_some() {
        let p = g.activation(format!("{SCOPE}/Predictions/Reshape_1"), vec![1, width]);
        g.op(
            SOFTMAX,
            vec![squeezed],
            vec![p],
            Options::Softmax { beta: 1.0 },
        );
        p
    } else {
        squeezed
    };
    g.model.inputs = vec![input];
    g.model.outputs = vec![output];
    g.model
}

/// `[kh, kw, in, out]` (row-major, `out` fastest) to TFLite's `[out, kh, kw, in]`.
fn hwio_to_ohwi(hwio: &[f32], per_out: usize, out: usize) -> Vec<f32> {
    let mut ohwi = vec![0f32; hwio.len()];
    for (hwi, row) in hwio.chunks_exact(out).enumerate() {
        for (o, &v) in row.iter().enumerate() {
            ohwi[o * per_out + hwi] = v;
        }
    }
    ohwi
}

/// The metadata Model Maker writes for an image classifier (or, for a feature-vector export, the
/// same input and a feature output without labels).
pub fn metadata(net: &FoldedNetwork, info: &ExportInfo) -> ImageModelMetadata {
    let (h, w) = info.size;
    let output = match &net.classifier {
        Some(cls) => Output {
            name: "probability".into(),
            description: format!(
                "Probabilities of the {} labels respectively.",
                cls.classes()
            ),
            range: Some((0.0, 1.0)),
            labels_file: Some(LABELS_FILE.into()),
        },
        None => Output {
            name: "feature_vector".into(),
            description: format!(
                "The {} features of the image: Conv2d_13_pointwise averaged over space.",
                net.feature_dim()
            ),
            range: None,
            labels_file: None,
        },
    };
    ImageModelMetadata {
        name: info.name.clone(),
        description: info.description.clone(),
        version: info.version.clone(),
        author: info.author.clone(),
        license: info.license.clone(),
        input: InputImage {
            name: "image".into(),
            description: format!(
                "Input image to be classified. The expected image is {w} x {h}, with three channels \
                 (red, green and blue) per pixel; each value is mapped from [0, 255] to [-1, 1]."
            ),
            mean: 127.5,
            std: 127.5,
        },
        output,
    }
}

/// The complete `.tflite`: flatbuffer with the metadata buffer, then (classifiers) the zip with
/// `labels.txt`.
pub fn to_bytes(net: &FoldedNetwork, info: &ExportInfo) -> std::io::Result<Vec<u8>> {
    let (h, w) = info.size;
    let mut model = graph(net, h, w, &info.producer);
    let meta = metadata(net, info).to_bytes();
    let meta_buffer = model.buffer(Buffer::Data(meta));
    let mut runtime = MIN_RUNTIME_VERSION.as_bytes().to_vec();
    runtime.resize(16, 0);
    let runtime_buffer = model.buffer(Buffer::Data(runtime));
    model.metadata = vec![
        (MIN_RUNTIME_NAME.into(), runtime_buffer),
        (tflite_metadata::METADATA_NAME.into(), meta_buffer),
    ];
    let bytes = model.to_bytes();
    let Some(labels) = net.classifier.as_ref().map(|_| &info.labels) else {
        return Ok(bytes);
    };
    let mut cursor = Cursor::new(bytes);
    cursor.seek(SeekFrom::End(0))?;
    let mut zip = zip::ZipWriter::new(cursor);
    // Stored, not deflated: the Task Library and MediaPipe read associated files in place and
    // refuse compressed members.
    let options =
        zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Stored);
    zip.start_file(LABELS_FILE, options)
        .map_err(std::io::Error::other)?;
    for l in labels {
        writeln!(zip, "{l}")?;
    }
    Ok(zip.finish().map_err(std::io::Error::other)?.into_inner())
}
