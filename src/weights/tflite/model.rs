//! Schema-level access to a TFLite model: its operator codes, tensors, constant buffers and
//! convolution operators, every read bounds-checked.

use super::flatbuffer::{Fb, Table, Vector};
use super::schema::*;
use super::{Conv, Kind, Layer, Result, TfliteError};

pub(super) struct Model<'a> {
    pub(super) fb: Fb<'a>,
    pub(super) opcodes: Vector<'a>,
    pub(super) buffers: Vector<'a>,
    pub(super) tensors: Vector<'a>,
    pub(super) operators: Vector<'a>,
}

impl<'a> Model<'a> {
    pub(super) fn parse(fb: Fb<'a>) -> Result<Self> {
        let root = fb.table(fb.uoffset(0, "root table offset")?, "Model")?;
        let version = root.u32_or(MODEL_VERSION, 0)?;
        if version != SCHEMA_VERSION {
            return Err(TfliteError::Unsupported(format!(
                "schema version {version}, expected {SCHEMA_VERSION}"
            )));
        }
        let opcodes = root.vector_req(MODEL_OPERATOR_CODES, 4, "Model.operator_codes")?;
        let subgraphs = root.vector_req(MODEL_SUBGRAPHS, 4, "Model.subgraphs")?;
        let buffers = root.vector_req(MODEL_BUFFERS, 4, "Model.buffers")?;
        if subgraphs.len() == 0 {
            return Err(TfliteError::Structure("the model has no subgraph".into()));
        }
        // Subgraph 0 is the main one (others are bodies of control-flow ops).
        let main = subgraphs.table(0, "SubGraph")?;
        let tensors = main.vector_req(SUBGRAPH_TENSORS, 4, "SubGraph.tensors")?;
        let operators = main.vector_req(SUBGRAPH_OPERATORS, 4, "SubGraph.operators")?;
        Ok(Model {
            fb,
            opcodes,
            buffers,
            tensors,
            operators,
        })
    }

    /// Builtin operator code of an operator (`max(deprecated_builtin_code, builtin_code)`).
    pub(super) fn opcode(&self, op: &Table<'a>, k: usize) -> Result<i32> {
        let idx = op.u32_or(OP_OPCODE_INDEX, 0)? as usize;
        if idx >= self.opcodes.len() {
            return Err(self.fb.malformed(
                op.pos,
                format!("operator #{k} uses opcode #{idx} of {}", self.opcodes.len()),
            ));
        }
        let oc = self.opcodes.table(idx, "OperatorCode")?;
        let deprecated = oc.u8_or(OPCODE_DEPRECATED_BUILTIN, 0)? as i8 as i32;
        let builtin = oc.i32_or(OPCODE_BUILTIN, 0)?;
        let code = deprecated.max(builtin);
        if code == CUSTOM {
            let name = oc
                .string(OPCODE_CUSTOM, "OperatorCode.custom_code")?
                .unwrap_or_default();
            return Err(TfliteError::Structure(format!(
                "operator #{k} is the custom op '{name}'; MobileNet V1 uses only builtin ops"
            )));
        }
        Ok(code)
    }

    pub(super) fn tensor(&self, id: i32, k: usize) -> Result<Table<'a>> {
        match usize::try_from(id) {
            Ok(i) if i < self.tensors.len() => self.tensors.table(i, "Tensor"),
            _ => Err(self.fb.malformed(
                self.tensors.start,
                format!(
                    "operator #{k} refers to tensor #{id} of {}",
                    self.tensors.len()
                ),
            )),
        }
    }

    pub(super) fn tensor_name(&self, t: &Table<'a>) -> String {
        t.string(TENSOR_NAME, "Tensor.name")
            .ok()
            .flatten()
            .unwrap_or_default()
    }

    /// Checks a tensor is float32 and returns its shape.
    pub(super) fn float_shape(
        &self,
        id: i32,
        k: usize,
        layer: &Layer,
    ) -> Result<(Table<'a>, Vec<i32>)> {
        let t = self.tensor(id, k)?;
        let dtype = t.u8_or(TENSOR_TYPE, 0)?;
        if dtype != TENSOR_FLOAT32 {
            return Err(TfliteError::NotFloat {
                op: k,
                layer: layer.scope(),
                tensor: id,
                name: self.tensor_name(&t),
                dtype: dtype_name(dtype),
            });
        }
        let shape = match t.vector(TENSOR_SHAPE, 4, "Tensor.shape")? {
            Some(v) => (0..v.len()).map(|i| v.i32(i)).collect::<Result<Vec<_>>>()?,
            None => Vec::new(),
        };
        Ok((t, shape))
    }

    /// The constant float32 data of a tensor with the given rank.
    pub(super) fn constant(
        &self,
        id: i32,
        k: usize,
        layer: &Layer,
        what: &str,
        rank: usize,
    ) -> Result<(Vec<usize>, Vec<f32>)> {
        let (t, _) = self.float_shape(id, k, layer)?;
        let (shape, bytes) = self.constant_bytes(&t, id, k, layer, what, rank, 4)?;
        let values = bytes
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect();
        Ok((shape, values))
    }

    /// The raw data of constant tensor `t` (#`id`), checked to have `rank` positive dimensions
    /// and `elem` bytes per element.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn constant_bytes(
        &self,
        t: &Table<'a>,
        id: i32,
        k: usize,
        layer: &Layer,
        what: &str,
        rank: usize,
        elem: usize,
    ) -> Result<(Vec<usize>, &'a [u8])> {
        let shape = match t.vector(TENSOR_SHAPE, 4, "Tensor.shape")? {
            Some(v) => (0..v.len()).map(|i| v.i32(i)).collect::<Result<Vec<_>>>()?,
            None => Vec::new(),
        };
        let fail = |msg: String| {
            TfliteError::Structure(format!(
                "operator #{k} ({}): {what} tensor #{id} '{}' {msg}",
                layer.scope(),
                self.tensor_name(t)
            ))
        };
        if shape.len() != rank || shape.iter().any(|&d| d <= 0) {
            return Err(fail(format!(
                "has shape {shape:?}, expected {rank} positive dimensions"
            )));
        }
        let shape: Vec<usize> = shape.iter().map(|&d| d as usize).collect();
        let count = shape
            .iter()
            .try_fold(1usize, |a, &d| a.checked_mul(d))
            .ok_or_else(|| fail(format!("has an impossible shape {shape:?}")))?;
        let b = t.u32_or(TENSOR_BUFFER, 0)? as usize;
        if b >= self.buffers.len() {
            return Err(self.fb.malformed(
                t.pos,
                format!("tensor #{id} uses buffer #{b} of {}", self.buffers.len()),
            ));
        }
        let buf = self.buffers.table(b, "Buffer")?;
        let data = buf.vector(BUFFER_DATA, 1, "Buffer.data")?;
        let bytes = data.map(|d| d.bytes()).transpose()?.unwrap_or(&[]);
        if bytes.is_empty() {
            if buf.u64_or(BUFFER_OFFSET, 0)? > 1 {
                return Err(TfliteError::Unsupported(format!(
                    "operator #{k} ({}): {what} tensor #{id} keeps its data outside the flatbuffer \
                     (buffer offset/size, used for models over 2 GB)",
                    layer.scope()
                )));
            }
            return Err(fail("is not a constant (its buffer is empty)".into()));
        }
        if count.checked_mul(elem) != Some(bytes.len()) {
            return Err(fail(format!(
                "has shape {shape:?} ({count} values of {elem} bytes) but its buffer holds {} bytes",
                bytes.len()
            )));
        }
        Ok((shape, bytes))
    }

    pub(super) fn conv(&self, op: &Table<'a>, k: usize, code: i32, layer: &Layer) -> Result<Conv> {
        let fail = |what: String| {
            TfliteError::Structure(format!(
                "operator #{k} ({} for {}): {what}",
                op_name(code),
                layer.scope()
            ))
        };
        if code != layer.code() {
            return Err(fail(format!("expected {}", op_name(layer.code()))));
        }
        let ins = op_tensors(op, OP_INPUTS, "Operator.inputs")?;
        let outs = op_tensors(op, OP_OUTPUTS, "Operator.outputs")?;
        if ins.len() < 2 || ins.len() > 3 || outs.len() != 1 {
            return Err(fail(format!(
                "has {} inputs and {} outputs",
                ins.len(),
                outs.len()
            )));
        }
        let input = self.tensor(ins[0], k)?;
        let quantized = input.u8_or(TENSOR_TYPE, 0)? != TENSOR_FLOAT32;
        let (in_shape, shape, filter, bias, quant) = if quantized {
            let q = self.quant_conv(&ins, outs[0], k, code, layer)?;
            (q.in_shape.clone(), q.shape, Vec::new(), Vec::new(), Some(q))
        } else {
            let (_, in_shape) = self.float_shape(ins[0], k, layer)?;
            self.float_shape(outs[0], k, layer)?;
            let (fshape, filter) = self.constant(ins[1], k, layer, "filter", 4)?;
            let shape = [fshape[0], fshape[1], fshape[2], fshape[3]];
            let bias = match ins.get(2) {
                Some(&b) if b >= 0 => {
                    let (_, v) = self.constant(b, k, layer, "bias", 1)?;
                    v
                }
                // No bias input: the folded bias is zero (sized by the filter, checked against its data).
                _ => {
                    let out_channels = if code == DEPTHWISE_CONV_2D {
                        shape[3]
                    } else {
                        shape[0]
                    };
                    vec![0.0; out_channels]
                }
            };
            (in_shape, shape, filter, bias, None)
        };
        if layer.kind == Kind::Conv0 && in_shape.len() == 4 && in_shape[3] != 3 {
            return Err(fail(format!(
                "input has shape {in_shape:?}, expected 3 channels (RGB)"
            )));
        }
        let (want_tag, opt_names) = if code == DEPTHWISE_CONV_2D {
            (OPTIONS_DEPTHWISE_CONV_2D, "DepthwiseConv2DOptions")
        } else {
            (OPTIONS_CONV_2D, "Conv2DOptions")
        };
        let tag = op.u8_or(OP_OPTIONS_TYPE, 0)?;
        if tag != want_tag {
            return Err(fail(format!(
                "options are union type {tag}, expected {opt_names}"
            )));
        }
        let o = op
            .table_field(OP_OPTIONS, opt_names)?
            .ok_or_else(|| fail(format!("has no {opt_names}")))?;
        let conv = if code == DEPTHWISE_CONV_2D {
            Conv {
                padding: o.u8_or(DW_PADDING, 0)?,
                stride: (o.i32_or(DW_STRIDE_W, 0)?, o.i32_or(DW_STRIDE_H, 0)?),
                dilation: (o.i32_or(DW_DILATION_W, 1)?, o.i32_or(DW_DILATION_H, 1)?),
                activation: o.u8_or(DW_ACTIVATION, 0)?,
                depth_multiplier: o.i32_or(DW_DEPTH_MULTIPLIER, 0)?,
                code,
                input: ins[0],
                output: outs[0],
                shape,
                filter,
                bias,
                quant,
            }
        } else {
            Conv {
                padding: o.u8_or(CONV_PADDING, 0)?,
                stride: (o.i32_or(CONV_STRIDE_W, 0)?, o.i32_or(CONV_STRIDE_H, 0)?),
                dilation: (o.i32_or(CONV_DILATION_W, 1)?, o.i32_or(CONV_DILATION_H, 1)?),
                activation: o.u8_or(CONV_ACTIVATION, 0)?,
                depth_multiplier: 1,
                code,
                input: ins[0],
                output: outs[0],
                shape,
                filter,
                bias,
                quant,
            }
        };
        Ok(conv)
    }
}

pub(super) fn op_tensors(op: &Table<'_>, field: usize, what: &'static str) -> Result<Vec<i32>> {
    match op.vector(field, 4, what)? {
        Some(v) => (0..v.len()).map(|i| v.i32(i)).collect(),
        None => Ok(Vec::new()),
    }
}
