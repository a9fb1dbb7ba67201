//! The folded network as ONNX (opset 13). The input is what mnv1 and the TF-Hub signature take,
//! NHWC float32 in [0, 1] with a dynamic batch; the graph transposes to NCHW and maps x to
//! x * 2 - 1 itself, then Conv (SAME_UPPER is TF's SAME) + Clip(0, 6) per layer, depthwise
//! convolutions as `group = C`, GlobalAveragePool, and the classifier as Gemm. Outputs `logits`
//! [N, K] or `features` [N, C].

use prost::Message;

use super::network::FoldedNetwork;
use super::onnx_proto::*;
use super::ExportInfo;
use crate::model::arch::LayerKind;

pub const OPSET: i64 = 13;
/// IR version 7 is the one of opset 13 (ONNX 1.8).
pub const IR_VERSION: i64 = 7;
pub const INPUT: &str = "image";
pub const LOGITS: &str = "logits";
pub const FEATURES: &str = "features";
const BATCH: &str = "batch";

fn initializer(name: &str, dims: Vec<i64>, values: &[f32]) -> TensorProto {
    TensorProto {
        dims,
        data_type: FLOAT,
        name: name.to_string(),
        raw_data: values.iter().flat_map(|v| v.to_le_bytes()).collect(),
    }
}

fn ints(name: &str, v: &[i64]) -> AttributeProto {
    AttributeProto {
        name: name.into(),
        r#type: ATTR_INTS,
        ints: v.to_vec(),
        ..Default::default()
    }
}

fn int(name: &str, v: i64) -> AttributeProto {
    AttributeProto {
        name: name.into(),
        r#type: ATTR_INT,
        i: v,
        ..Default::default()
    }
}

fn string(name: &str, v: &str) -> AttributeProto {
    AttributeProto {
        name: name.into(),
        r#type: ATTR_STRING,
        s: v.as_bytes().to_vec(),
        ..Default::default()
    }
}

fn node(
    op: &str,
    name: &str,
    inputs: &[&str],
    output: &str,
    attrs: Vec<AttributeProto>,
) -> NodeProto {
    NodeProto {
        input: inputs.iter().map(|s| s.to_string()).collect(),
        output: vec![output.to_string()],
        name: name.to_string(),
        op_type: op.to_string(),
        attribute: attrs,
    }
}

fn value_info(name: &str, dims: &[Option<usize>], doc: &str) -> ValueInfoProto {
    let dim = dims
        .iter()
        .map(|d| Dimension {
            value: Some(match d {
                Some(n) => DimensionValue::DimValue(*n as i64),
                None => DimensionValue::DimParam(BATCH.into()),
            }),
        })
        .collect();
    ValueInfoProto {
        name: name.to_string(),
        r#type: Some(TypeProto {
            tensor_type: Some(TypeProtoTensor {
                elem_type: FLOAT,
                shape: Some(TensorShapeProto { dim }),
            }),
        }),
        doc_string: doc.to_string(),
    }
}

/// `[kh, kw, in, out]` (TF HWIO, `out` fastest) to ONNX's `[out, in, kh, kw]`.
fn hwio_to_oihw(hwio: &[f32], k: usize, cin: usize, cout: usize) -> Vec<f32> {
    let mut oihw = vec![0f32; hwio.len()];
    for y in 0..k {
        for x in 0..k {
            for i in 0..cin {
                for o in 0..cout {
                    oihw[((o * cin + i) * k + y) * k + x] =
                        hwio[((y * k + x) * cin + i) * cout + o];
                }
            }
        }
    }
    oihw
}

/// `[kh, kw, C, 1]` to ONNX's grouped `[C, 1, kh, kw]`.
fn depthwise_to_c1hw(taps: &[f32], k: usize, c: usize) -> Vec<f32> {
    let mut out = vec![0f32; taps.len()];
    for t in 0..k * k {
        for ch in 0..c {
            out[ch * k * k + t] = taps[t * c + ch];
        }
    }
    out
}

/// The model as a `ModelProto`.
pub fn model(net: &FoldedNetwork, info: &ExportInfo) -> ModelProto {
    let (h, w) = info.size;
    let mut nodes = Vec::new();
    let mut inits = vec![
        initializer("two", vec![], &[2.0]),
        initializer("one", vec![], &[1.0]),
        initializer("relu6_min", vec![], &[0.0]),
        initializer("relu6_max", vec![], &[6.0]),
    ];
    nodes.push(node(
        "Transpose",
        "to_nchw",
        &[INPUT],
        "nchw",
        vec![ints("perm", &[0, 3, 1, 2])],
    ));
    nodes.push(node("Mul", "scale", &["nchw", "two"], "scaled", vec![]));
    nodes.push(node("Sub", "shift", &["scaled", "one"], "x", vec![]));
    let mut x = "x".to_string();
    for l in &net.layers {
        let layer = &l.layer;
        let (k, cin, cout) = (layer.kernel(), layer.in_channels, layer.out_channels);
        let (filter, dims, group) = match layer.kind {
            LayerKind::Depthwise => (
                depthwise_to_c1hw(&l.filter, k, cout),
                vec![cout as i64, 1, k as i64, k as i64],
                cout as i64,
            ),
            LayerKind::Conv | LayerKind::Pointwise => (
                hwio_to_oihw(&l.filter, k, cin, cout),
                vec![cout as i64, cin as i64, k as i64, k as i64],
                1,
            ),
        };
        let (wname, bname) = (
            format!("{}/weights", layer.name),
            format!("{}/biases", layer.name),
        );
        inits.push(initializer(&wname, dims, &filter));
        inits.push(initializer(&bname, vec![cout as i64], &l.bias));
        let conv = format!("{}/conv", layer.name);
        let s = layer.stride as i64;
        nodes.push(node(
            "Conv",
            &layer.name,
            &[&x, &wname, &bname],
            &conv,
            vec![
                ints("kernel_shape", &[k as i64, k as i64]),
                ints("strides", &[s, s]),
                // TF SAME: any odd padding goes at the end (bottom / right).
                string("auto_pad", "SAME_UPPER"),
                int("group", group),
            ],
        ));
        let relu = format!("{}/relu6", layer.name);
        nodes.push(node(
            "Clip",
            &relu,
            &[&conv, "relu6_min", "relu6_max"],
            &relu,
            vec![],
        ));
        x = relu;
    }
    nodes.push(node("GlobalAveragePool", "pool", &[&x], "pooled", vec![]));
    let c = net.feature_dim();
    let (output, width) = match &net.classifier {
        Some(cls) => {
            let k = cls.classes();
            nodes.push(node(
                "Flatten",
                "flatten",
                &["pooled"],
                FEATURES,
                vec![int("axis", 1)],
            ));
            inits.push(initializer(
                "Logits/weights",
                vec![c as i64, k as i64],
                &cls.weights,
            ));
            inits.push(initializer("Logits/biases", vec![k as i64], &cls.biases));
            nodes.push(node(
                "Gemm",
                "logits",
                &[FEATURES, "Logits/weights", "Logits/biases"],
                LOGITS,
                vec![],
            ));
            (LOGITS, k)
        }
        None => {
            nodes.push(node(
                "Flatten",
                "flatten",
                &["pooled"],
                FEATURES,
                vec![int("axis", 1)],
            ));
            (FEATURES, c)
        }
    };
    let graph = GraphProto {
        node: nodes,
        name: info.name.clone(),
        initializer: inits,
        doc_string: info.description.clone(),
        input: vec![value_info(
            INPUT,
            &[None, Some(h), Some(w), Some(3)],
            "RGB images, NHWC, values in [0, 1] (pixel / 255), central-cropped and resized as \
             TF-Slim's eval preprocessing",
        )],
        output: vec![value_info(
            output,
            &[None, Some(width)],
            if net.classifier.is_some() {
                "logits, one per class in the order of the `labels` metadata entry (softmax for probabilities)"
            } else {
                "the pooled Conv2d_13_pointwise features"
            },
        )],
    };
    let mut props = vec![
        StringStringEntryProto {
            key: "input_range".into(),
            value: "[0, 1]".into(),
        },
        StringStringEntryProto {
            key: "license".into(),
            value: info.license.clone(),
        },
    ];
    if net.classifier.is_some() {
        props.push(StringStringEntryProto {
            key: "labels".into(),
            value: info.labels.join("\n"),
        });
    }
    ModelProto {
        ir_version: IR_VERSION,
        opset_import: vec![OperatorSetIdProto {
            domain: String::new(),
            version: OPSET,
        }],
        producer_name: "mnv1".into(),
        producer_version: env!("CARGO_PKG_VERSION").into(),
        domain: String::new(),
        model_version: 1,
        doc_string: info.description.clone(),
        graph: Some(graph),
        metadata_props: props,
    }
}

pub fn to_bytes(net: &FoldedNetwork, info: &ExportInfo) -> Vec<u8> {
    model(net, info).encode_to_vec()
}
