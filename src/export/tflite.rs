//! The folded network as a float32 `.tflite` in the operator sequence of the 2018 release files:
//! `CONV_2D`, 13 x (`DEPTHWISE_CONV_2D`, `CONV_2D`) with ReLU6 fused and SAME padding,
//! `AVERAGE_POOL_2D`, the logits `CONV_2D`, `SQUEEZE`, `SOFTMAX` (a feature-vector export stops
//! after the pooling and a `SQUEEZE` to [N, C]). The release files squeeze where one might expect
//! a `RESHAPE` (mobilenet_v1_0.25_128.tflite: `SQUEEZE`, squeeze_dims [1, 2]). Input
//! `[1, H, W, 3]` in [-1, 1] as in the release files, batch dynamic in the shape signature; then the Model Maker style metadata buffer and
//! `labels.txt` in a zip appended to the flatbuffer, as tflite-support's `MetadataPopulator` does.
//!
//! A quantized network (`QuantizedNet`, int8 scheme) is written in the same sequence with the
//! same tensor names as TFLiteConverter writes a full-integer model with
//! `inference_input_type=inference_output_type=tf.uint8`: int8 activations, per-channel int8
//! filters, int32 biases, the integer kernels' operator versions, and a `QUANTIZE` at each end
//! between the uint8 input / output and the int8 graph (same scale, zero point + 128: TFLite runs
//! it as a flip of the top bit).

use std::io::{Cursor, Seek, SeekFrom, Write};

use super::network::FoldedNetwork;
use super::tflite_metadata::{self, ImageModelMetadata, InputImage, Output};
use super::tflite_writer::{Buffer, Options, Quantization, Tensor, TfliteModel};
use super::{ExportError, ExportInfo, Head};
use crate::model::arch::{Layer, LayerKind, SCOPE};
use crate::weights::tflite::schema::*;
use crate::weights::tflite::{QParams, QuantLayer, QuantizedNet};

/// The associated file holding one class name per line, in output order.
pub const LABELS_FILE: &str = "labels.txt";
/// `Model.metadata` entry that TF's converter adds: the oldest TFLite runtime that runs every
/// operator at its version, a 16-byte zero-padded string (runtime_version.cc). Float: all
/// version 1, TFLite 1.5; int8: CONV_2D 3, DEPTHWISE_CONV_2D 3, AVERAGE_POOL_2D 2, SOFTMAX 2,
/// TFLite 1.14.
const MIN_RUNTIME_NAME: &str = "min_runtime_version";
const MIN_RUNTIME_FLOAT: &str = "1.5.0";
const MIN_RUNTIME_INT8: &str = "1.14.0";

fn f32_bytes(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

fn i8_bytes(v: &[i32]) -> Vec<u8> {
    v.iter().map(|&x| x as i8 as u8).collect()
}

fn i32_bytes(v: &[i32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

/// The operator version TFLiteConverter writes for `code` with int8 tensors (op_version.cc:
/// per-channel int8 CONV_2D and DEPTHWISE_CONV_2D 3, int8 AVERAGE_POOL_2D and SOFTMAX 2;
/// SQUEEZE and QUANTIZE 1, as in a converter's uint8-io file).
fn int8_version(code: i32) -> i32 {
    match code {
        CONV_2D | DEPTHWISE_CONV_2D => 3,
        AVERAGE_POOL_2D | SOFTMAX => 2,
        _ => 1,
    }
}

/// A constant tensor as the file stores it.
struct Constant {
    dtype: u8,
    data: Vec<u8>,
    quantization: Option<Quantization>,
}

/// One convolution's constants (filter in TFLite layout, bias) and its output's quantization.
struct ConvTensors {
    filter: Constant,
    bias: Constant,
    output: Option<Quantization>,
}

/// What fills the graph: the float network, or the integer one. `None` quantization
/// everywhere for float32.
struct Contents {
    /// Activation type: FLOAT32 or INT8.
    dtype: u8,
    input: Option<Quantization>,
    body: Vec<(Layer, ConvTensors)>,
    pooled: Option<Quantization>,
    /// Classes and the logits layer; None: a feature-vector export.
    classifier: Option<(usize, ConvTensors)>,
    probs: Option<Quantization>,
    softmax_beta: f32,
}

impl Contents {
    fn float(net: &FoldedNetwork) -> Self {
        let float = |data: Vec<f32>| Constant {
            dtype: TENSOR_FLOAT32,
            data: f32_bytes(&data),
            quantization: None,
        };
        let body = net
            .layers
            .iter()
            .map(|l| {
                let layer = &l.layer;
                let k = layer.kernel();
                // [kh, kw, C, 1] and TFLite's [1, kh, kw, C] hold the same element order.
                let filter = match layer.kind {
                    LayerKind::Depthwise => l.filter.clone(),
                    LayerKind::Conv | LayerKind::Pointwise => {
                        hwio_to_ohwi(&l.filter, k * k * layer.in_channels, layer.out_channels)
                    }
                };
                let tensors = ConvTensors {
                    filter: float(filter),
                    bias: float(l.bias.clone()),
                    output: None,
                };
                (layer.clone(), tensors)
            })
            .collect();
        let c = net.feature_dim();
        let classifier = net.classifier.as_ref().map(|cls| {
            let k = cls.classes();
            let tensors = ConvTensors {
                filter: float(hwio_to_ohwi(&cls.weights, c, k)),
                bias: float(cls.biases.clone()),
                output: None,
            };
            (k, tensors)
        });
        Contents {
            dtype: TENSOR_FLOAT32,
            input: None,
            body,
            pooled: None,
            classifier,
            probs: None,
            softmax_beta: 1.0,
        }
    }

    /// The integer network up to `head`; only the int8 scheme (per-channel symmetric filters).
    fn int8(net: &QuantizedNet, head: Head) -> Result<Self, ExportError> {
        if !net.signed {
            return Err(ExportError::Invalid(format!(
                "the model is quantized {}; mnv1 writes int8 per-channel models (TFLiteConverter's \
                 full-integer scheme) only",
                net.scheme()
            )));
        }
        let act = |q: QParams| Some(Quantization::per_tensor(q.scale, q.zero_point));
        let conv =
            |l: &QuantLayer, axis: i32, filter: Vec<i32>| -> Result<ConvTensors, ExportError> {
                if l.filter_zero_point != 0 {
                    return Err(ExportError::Invalid(format!(
                        "a filter has the zero point {}; int8 filters are symmetric",
                        l.filter_zero_point
                    )));
                }
                let zeros = vec![0i64; l.out_channels];
                Ok(ConvTensors {
                    filter: Constant {
                        dtype: TENSOR_INT8,
                        data: i8_bytes(&filter),
                        quantization: Some(Quantization {
                            scales: l.filter_scales.clone(),
                            zero_points: zeros.clone(),
                            quantized_dimension: axis,
                        }),
                    },
                    // The bias scale is input scale x filter scale, per channel (the kernels take
                    // the bias integers as they are).
                    bias: Constant {
                        dtype: TENSOR_INT32,
                        data: i32_bytes(&l.bias),
                        quantization: Some(Quantization {
                            scales: l.filter_scales.iter().map(|s| s * l.input.scale).collect(),
                            zero_points: zeros,
                            quantized_dimension: 0,
                        }),
                    },
                    output: act(l.output),
                })
            };
        let body = net
            .arch
            .layers()
            .into_iter()
            .zip(&net.body)
            .map(|(layer, l)| {
                let (axis, filter) = match layer.kind {
                    // HWIO [3][3][3][out] -> [out][3][3][3].
                    LayerKind::Conv => (
                        0,
                        hwio_to_ohwi(&l.filter, 9 * l.in_channels, l.out_channels),
                    ),
                    // [3][3][C] is TFLite's [1, 3, 3, C], channels on axis 3.
                    LayerKind::Depthwise => (3, l.filter.clone()),
                    // [out][in] is [out, 1, 1, in].
                    LayerKind::Pointwise => (0, l.filter.clone()),
                };
                Ok((layer, conv(l, axis, filter)?))
            })
            .collect::<Result<Vec<_>, ExportError>>()?;
        let (classifier, probs, beta) = match head {
            Head::Features => (None, None, 1.0),
            Head::Logits => {
                let (Some(l), Some(s)) = (&net.logits, &net.softmax) else {
                    return Err(ExportError::Invalid(
                        "the quantized model has no logits layer and softmax: export it with \
                         --head feature-vector"
                            .into(),
                    ));
                };
                let tensors = conv(l, 0, l.filter.clone())?;
                (Some((l.out_channels, tensors)), act(s.output), s.beta)
            }
        };
        Ok(Contents {
            dtype: TENSOR_INT8,
            input: act(net.input),
            body,
            pooled: act(net.pooled),
            classifier,
            probs,
            softmax_beta: beta,
        })
    }

    fn quantized(&self) -> bool {
        self.dtype != TENSOR_FLOAT32
    }
}

/// The uint8 twin of an int8 tensor's quantization: same scale, zero point + 128 (what
/// TFLiteConverter gives a uint8 input or output).
fn as_uint8(q: &Quantization) -> Quantization {
    Quantization {
        zero_points: q.zero_points.iter().map(|z| z + 128).collect(),
        ..q.clone()
    }
}

struct Graph {
    model: TfliteModel,
    /// Integer operators take the converter's int8 versions.
    quantized: bool,
}

impl Graph {
    /// An activation tensor: batch 1 in the shape, dynamic (-1) in the signature.
    fn activation(
        &mut self,
        name: String,
        shape: Vec<usize>,
        dtype: u8,
        quantization: Option<Quantization>,
    ) -> i32 {
        let shape: Vec<i32> = shape.iter().map(|&d| d as i32).collect();
        let mut signature = shape.clone();
        signature[0] = -1;
        self.model.tensor(Tensor {
            name,
            shape,
            shape_signature: Some(signature),
            dtype,
            buffer: 0,
            quantization,
        })
    }

    fn constant(&mut self, name: String, shape: Vec<usize>, c: Constant) -> i32 {
        let buffer = self.model.buffer(Buffer::Data(c.data));
        self.model.tensor(Tensor {
            name,
            shape: shape.iter().map(|&d| d as i32).collect(),
            shape_signature: None,
            dtype: c.dtype,
            buffer,
            quantization: c.quantization,
        })
    }

    fn op(&mut self, code: i32, inputs: Vec<i32>, outputs: Vec<i32>, options: Options) {
        let version = if self.quantized {
            int8_version(code)
        } else {
            1
        };
        self.model
            .op_version(code, version, inputs, outputs, options);
    }
}

/// The graph alone (no metadata) for an `h` x `w` input.
fn graph(contents: Contents, h: usize, w: usize, description: &str) -> TfliteModel {
    let dtype = contents.dtype;
    let mut g = Graph {
        model: TfliteModel::new(),
        quantized: contents.quantized(),
    };
    g.model.description = Some(description.to_string());
    g.model.subgraph_name = Some("main".into());
    let in_shape = vec![1, h, w, 3];
    // A quantized graph reads uint8 "input" and QUANTIZEs it to the int8 graph's input.
    let (input, first) = match &contents.input {
        Some(q) => {
            let input = g.activation(
                "input".into(),
                in_shape.clone(),
                TENSOR_UINT8,
                Some(as_uint8(q)),
            );
            let int8 = g.activation("input_int8".into(), in_shape, dtype, Some(q.clone()));
            g.op(QUANTIZE, vec![input], vec![int8], Options::None);
            (input, int8)
        }
        None => {
            let input = g.activation("input".into(), in_shape, dtype, None);
            (input, input)
        }
    };
    let (mut x, mut size) = (first, (h, w));
    for (layer, t) in contents.body {
        let (cin, cout, k) = (layer.in_channels, layer.out_channels, layer.kernel());
        let scope = format!("{SCOPE}/{}", layer.name);
        let stride = (layer.stride as i32, layer.stride as i32);
        let (code, filter, options) = match layer.kind {
            LayerKind::Depthwise => (
                DEPTHWISE_CONV_2D,
                g.constant(
                    format!("{scope}/depthwise_weights"),
                    vec![1, k, k, cout],
                    t.filter,
                ),
                Options::DepthwiseConv2D {
                    padding: PADDING_SAME,
                    stride,
                    depth_multiplier: Some(1),
                    activation: ACT_RELU6,
                    dilation: (1, 1),
                },
            ),
            LayerKind::Conv | LayerKind::Pointwise => (
                CONV_2D,
                g.constant(format!("{scope}/weights"), vec![cout, k, k, cin], t.filter),
                Options::Conv2D {
                    padding: PADDING_SAME,
                    stride,
                    activation: ACT_RELU6,
                    dilation: (1, 1),
                },
            ),
        };
        let bias = g.constant(format!("{scope}/biases"), vec![cout], t.bias);
        size = (size.0.div_ceil(layer.stride), size.1.div_ceil(layer.stride));
        let y = g.activation(
            format!("{SCOPE}/{SCOPE}/{}/Relu6", layer.name),
            vec![1, size.0, size.1, cout],
            dtype,
            t.output,
        );
        g.op(code, vec![x, filter, bias], vec![y], options);
        x = y;
    }
    // The release files pool with one window over the whole final map (VALID, AvgPool_1a).
    let c = x_channels(&g, x);
    let pooled = g.activation(
        format!("{SCOPE}/Logits/AvgPool_1a/AvgPool"),
        vec![1, 1, 1, c],
        dtype,
        contents.pooled.clone(),
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
    let classes = contents.classifier.as_ref().map(|(k, _)| *k);
    let (x, width, squeeze_name, squeeze_q) = match contents.classifier {
        Some((k, t)) => {
            let scope = format!("{SCOPE}/Logits/Conv2d_1c_1x1");
            let filter = g.constant(format!("{scope}/weights"), vec![k, 1, 1, c], t.filter);
            let bias = g.constant(format!("{scope}/biases"), vec![k], t.bias);
            let logits = g.activation(
                format!("{scope}/BiasAdd"),
                vec![1, 1, 1, k],
                dtype,
                t.output.clone(),
            );
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
            (
                logits,
                k,
                format!("{SCOPE}/Logits/SpatialSqueeze"),
                t.output,
            )
        }
        None => (pooled, c, "feature_vector".to_string(), contents.pooled),
    };
    // The output keeps the float export's name; in a quantized graph the int8 tensor before
    // the final QUANTIZE takes it with an `_int8` suffix.
    let quantized = contents.input.is_some();
    let edge_name = |name: String| {
        if quantized {
            format!("{name}_int8")
        } else {
            name
        }
    };
    let (out_name, out_q) = match classes {
        Some(_) => (format!("{SCOPE}/Predictions/Reshape_1"), contents.probs),
        None => (squeeze_name.clone(), squeeze_q.clone()),
    };
    // The release files' SpatialSqueeze: [N, 1, 1, W] -> [N, W], whatever N is.
    let squeeze_name = match classes {
        Some(_) => squeeze_name,
        None => edge_name(squeeze_name),
    };
    let squeezed = g.activation(squeeze_name, vec![1, width], dtype, squeeze_q);
    g.op(
        SQUEEZE,
        vec![x],
        vec![squeezed],
        Options::Squeeze {
            squeeze_dims: vec![1, 2],
        },
    );
    let mut output = squeezed;
    if classes.is_some() {
        output = g.activation(
            edge_name(out_name.clone()),
            vec![1, width],
            dtype,
            out_q.clone(),
        );
        g.op(
            SOFTMAX,
            vec![squeezed],
            vec![output],
            Options::Softmax {
                beta: contents.softmax_beta,
            },
        );
    }
    if let Some(q) = out_q.filter(|_| quantized) {
        let uint8 = g.activation(out_name, vec![1, width], TENSOR_UINT8, Some(as_uint8(&q)));
        g.op(QUANTIZE, vec![output], vec![uint8], Options::None);
        output = uint8;
    }
    g.model.inputs = vec![input];
    g.model.outputs = vec![output];
    g.model
}

/// The channels of activation tensor `x` (its shape's last dimension).
fn x_channels(g: &Graph, x: i32) -> usize {
    *g.model.tensors[x as usize]
        .shape
        .last()
        .expect("4-d activation") as usize
}

/// `[kh, kw, in, out]` (row-major, `out` fastest) to TFLite's `[out, kh, kw, in]`.
fn hwio_to_ohwi<T: Copy + Default>(hwio: &[T], per_out: usize, out: usize) -> Vec<T> {
    let mut ohwi = vec![T::default(); hwio.len()];
    for (hwi, row) in hwio.chunks_exact(out).enumerate() {
        for (o, &v) in row.iter().enumerate() {
            ohwi[o * per_out + hwi] = v;
        }
    }
    ohwi
}

/// The metadata Model Maker writes for an image classifier with `classes` outputs (or, for a
/// feature-vector export (None), the same input and a feature output without labels). A
/// quantized model's uint8 input and output take the ranges metadata_info.py gives uint8 tensors
/// (0 to 255); the input's NormalizationOptions stay those of the float model, which MediaPipe
/// and the Task Library apply to float inputs only (a uint8 input takes the pixels as they are).
fn metadata(
    classes: Option<usize>,
    feature_dim: usize,
    quantized: bool,
    info: &ExportInfo,
) -> ImageModelMetadata {
    let (h, w) = info.size;
    let output = match classes {
        Some(k) => Output {
            name: "probability".into(),
            description: format!("Probabilities of the {k} labels respectively."),
            range: Some(if quantized { (0.0, 255.0) } else { (0.0, 1.0) }),
            labels_file: Some(LABELS_FILE.into()),
        },
        None => Output {
            name: "feature_vector".into(),
            description: format!(
                "The {feature_dim} features of the image: Conv2d_13_pointwise averaged over space."
            ),
            range: None,
            labels_file: None,
        },
    };
    let (mean, std) = (127.5, 127.5);
    let (description, range) = if quantized {
        (
            format!(
                "Input image to be classified. The expected image is {w} x {h}, with three \
                 channels (red, green and blue) per pixel; each value is a uint8 pixel in [0, 255]."
            ),
            (0.0, 255.0),
        )
    } else {
        (
            format!(
                "Input image to be classified. The expected image is {w} x {h}, with three \
                 channels (red, green and blue) per pixel; each value is mapped from [0, 255] to \
                 [-1, 1]."
            ),
            // Pixel values 0 and 255 after normalisation, as InputImageTensorMd computes.
            ((0.0 - mean) / std, (255.0 - mean) / std),
        )
    };
    ImageModelMetadata {
        name: info.name.clone(),
        description: info.description.clone(),
        version: info.version.clone(),
        author: info.author.clone(),
        license: info.license.clone(),
        input: InputImage {
            name: "image".into(),
            description,
            mean,
            std,
            range,
        },
        output,
    }
}

/// The complete float `.tflite`: flatbuffer with the metadata buffer, then (classifiers) the zip
/// with `labels.txt`.
pub fn to_bytes(net: &FoldedNetwork, info: &ExportInfo) -> std::io::Result<Vec<u8>> {
    let classes = net.classifier.as_ref().map(|c| c.classes());
    let meta = metadata(classes, net.feature_dim(), false, info);
    file(Contents::float(net), meta, MIN_RUNTIME_FLOAT, info)
}

/// The complete uint8-io full-integer `.tflite` of `net` up to `head`, with the same metadata
/// and labels as the float export.
pub fn quantized_to_bytes(
    net: &QuantizedNet,
    head: Head,
    info: &ExportInfo,
) -> Result<Vec<u8>, ExportError> {
    if info.size != net.input_size {
        return Err(ExportError::Invalid(format!(
            "the quantized model's input is {}x{}, not {}x{} (its pool is fixed to its size)",
            net.input_size.0, net.input_size.1, info.size.0, info.size.1
        )));
    }
    let contents = Contents::int8(net, head)?;
    let classes = contents.classifier.as_ref().map(|(k, _)| *k);
    let meta = metadata(classes, net.arch.feature_dim(), true, info);
    file(contents, meta, MIN_RUNTIME_INT8, info).map_err(|source| ExportError::Io {
        path: "the .tflite zip".into(),
        source,
    })
}

fn file(
    contents: Contents,
    meta: ImageModelMetadata,
    min_runtime: &str,
    info: &ExportInfo,
) -> std::io::Result<Vec<u8>> {
    let (h, w) = info.size;
    let classifier = contents.classifier.is_some();
    let mut model = graph(contents, h, w, &info.producer);
    let meta_buffer = model.buffer(Buffer::Data(meta.to_bytes()));
    let mut runtime = min_runtime.as_bytes().to_vec();
    runtime.resize(16, 0);
    let runtime_buffer = model.buffer(Buffer::Data(runtime));
    model.metadata = vec![
        (MIN_RUNTIME_NAME.into(), runtime_buffer),
        (tflite_metadata::METADATA_NAME.into(), meta_buffer),
    ];
    let bytes = model.to_bytes();
    if !classifier {
        return Ok(bytes);
    }
    let mut cursor = Cursor::new(bytes);
    cursor.seek(SeekFrom::End(0))?;
    let mut zip = zip::ZipWriter::new(cursor);
    // Stored, not deflated: the Task Library and MediaPipe read associated files in place and
    // refuse compressed members.
    let options =
        zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Stored);
    zip.start_file(LABELS_FILE, options)
        .map_err(std::io::Error::other)?;
    for l in &info.labels {
        writeln!(zip, "{l}")?;
    }
    Ok(zip.finish().map_err(std::io::Error::other)?.into_inner())
}
