"""Make tests/fixtures/hf_025_128/: a Hugging Face transformers repository (config.json +
model.safetensors) holding the same seeded weights as tests/fixtures/mobilenet_v1_0.25_128.tgz,
laid out exactly as google/mobilenet_v1_1.0_224 and google/mobilenet_v1_0.75_192 are.

transformers 5 dropped `load_tf_weights_in_mobilenet_v1`, so the TF -> PyTorch mapping below
follows transformers 4.x's `_build_tf_to_pytorch_map` and `load_tf_weights_in_mobilenet_v1`
(models/mobilenet_v1/modeling_mobilenet_v1.py): stem -> conv_stem, Conv2d_{i}_depthwise ->
layer[2(i-1)], Conv2d_{i}_pointwise -> layer[2(i-1)+1], gamma/beta/moving_mean/moving_variance ->
normalization.weight/bias/running_mean/running_var, depthwise filters transposed (2, 3, 0, 1),
other filters (3, 2, 0, 1), the logits 1x1 conv squeezed and transposed into the Linear
`classifier`. The model object and the files are transformers' own
(MobileNetV1ForImageClassification, save_pretrained). The script checks the result: the
transformers model must reproduce TensorFlow's logits in tests/fixtures/golden_025_128.npz.

Run (two venvs: TensorFlow reads the checkpoint, torch + transformers write the repository):
    python3 -m venv /tmp/hfenv && /tmp/hfenv/bin/pip install torch transformers safetensors numpy
    /tmp/hfenv/bin/python tools/make_hf_fixture.py --tf-python /tmp/tfenv/bin/python
Made with torch 2.15.0, transformers 5.24.0, safetensors 0.8.0, numpy 2.4.6 (and TF 2.21 for reading).
"""

import argparse
import json
import os
import subprocess
import tarfile
import tempfile

import numpy as np
import torch
from transformers import MobileNetV1Config, MobileNetV1ForImageClassification

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FIXTURES = os.path.join(ROOT, "tests", "fixtures")

DUMP = """
import sys, numpy as np, tensorflow as tf
r = tf.train.load_checkpoint(sys.argv[1])
names = [n for n in r.get_variable_to_shape_map() if n.startswith("MobilenetV1/")
         and not n.endswith(("/RMSProp", "/RMSProp_1", "/ExponentialMovingAverage"))]
np.savez(sys.argv[2], **{n: r.get_tensor(n) for n in names})
"""


def tf_tensors(tf_python, tmp):
    with tarfile.open(os.path.join(FIXTURES, "mobilenet_v1_0.25_128.tgz")) as t:
        t.extractall(tmp, filter="data")
    out = os.path.join(tmp, "vars.npz")
    subprocess.run([tf_python, "-c", DUMP, os.path.join(tmp, "mobilenet_v1_0.25_128.ckpt"), out], check=True)
    return dict(np.load(out))


def tf_to_pt_map(model):
    """transformers 4.x _build_tf_to_pytorch_map, for MobileNetV1ForImageClassification."""
    backbone = model.mobilenet_v1
    m = {}
    prefix = "MobilenetV1/Conv2d_0/"
    m[prefix + "weights"] = backbone.conv_stem.convolution.weight
    m[prefix + "BatchNorm/beta"] = backbone.conv_stem.normalization.bias
    m[prefix + "BatchNorm/gamma"] = backbone.conv_stem.normalization.weight
    m[prefix + "BatchNorm/moving_mean"] = backbone.conv_stem.normalization.running_mean
    m[prefix + "BatchNorm/moving_variance"] = backbone.conv_stem.normalization.running_var
    for i in range(13):
        tf_index, pt_index = i + 1, i * 2
        for kind, layer, leaf in (("depthwise", backbone.layer[pt_index], "depthwise_weights"),
                                  ("pointwise", backbone.layer[pt_index + 1], "weights")):
            prefix = f"MobilenetV1/Conv2d_{tf_index}_{kind}/"
            m[prefix + leaf] = layer.convolution.weight
            m[prefix + "BatchNorm/beta"] = layer.normalization.bias
            m[prefix + "BatchNorm/gamma"] = layer.normalization.weight
            m[prefix + "BatchNorm/moving_mean"] = layer.normalization.running_mean
            m[prefix + "BatchNorm/moving_variance"] = layer.normalization.running_var
    m["MobilenetV1/Logits/Conv2d_1c_1x1/weights"] = model.classifier.weight
    m["MobilenetV1/Logits/Conv2d_1c_1x1/biases"] = model.classifier.bias
    return m


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--tf-python", default="/tmp/tfenv/bin/python")
    ap.add_argument("--out", default=os.path.join(FIXTURES, "hf_025_128"))
    args = ap.parse_args()
    torch.manual_seed(0)
    config = MobileNetV1Config(depth_multiplier=0.25, image_size=128, num_labels=1001, tf_padding=True,
                               hidden_act="relu6", layer_norm_eps=0.001)
    model = MobileNetV1ForImageClassification(config).eval()
    with tempfile.TemporaryDirectory() as tmp:
        tf_vars = tf_tensors(args.tf_python, tmp)
    mapping = tf_to_pt_map(model)
    assert set(mapping) == set(tf_vars), sorted(set(mapping) ^ set(tf_vars))
    with torch.no_grad():
        for name, pointer in mapping.items():
            array = tf_vars[name]
            # the transposes of transformers 4.x load_tf_weights_in_mobilenet_v1
            if "depthwise_weights" in name:
                array = np.transpose(array, (2, 3, 0, 1))
            elif "weights" in name:
                if len(pointer.shape) == 2:  # the Linear classifier
                    array = array.squeeze().transpose()
                else:
                    array = np.transpose(array, (3, 2, 0, 1))
            assert tuple(pointer.shape) == array.shape, (name, pointer.shape, array.shape)
            pointer.copy_(torch.from_numpy(np.ascontiguousarray(array)))

    # Check against TensorFlow's own logits (inputs there are already in [-1, 1], NHWC).
    golden = np.load(os.path.join(FIXTURES, "golden_025_128.npz"))
    worst = 0.0
    for i in range(3):
        x = torch.from_numpy(np.transpose(golden[f"input_{i}"], (0, 3, 1, 2)).copy())
        with torch.no_grad():
            logits = model(pixel_values=x).logits[0].numpy()
        worst = max(worst, float(np.abs(logits - golden[f"logits_{i}"]).max()))
    print(f"max |transformers - TF| logits over 3 inputs: {worst:.2e}")
    assert worst < 1e-4, worst

    os.makedirs(args.out, exist_ok=True)
    model.save_pretrained(args.out, safe_serialization=True)
    for f in sorted(os.listdir(args.out)):
        print(f, os.path.getsize(os.path.join(args.out, f)))
    with open(os.path.join(args.out, "config.json")) as f:
        assert json.load(f)["model_type"] == "mobilenet_v1"


if __name__ == "__main__":
    main()
