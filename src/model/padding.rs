//! TensorFlow's SAME padding, computed per layer from the actual input size.

/// Output size and (before, after) padding of a SAME convolution along one axis:
/// `out = ceil(in / s)`, `total = max((out - 1) * s + k - in, 0)`, `before = total / 2`.
/// For a 3x3 stride-2 layer on an even size that is (0, 1): asymmetric, unlike PyTorch's padding=1.
pub fn same_padding(input: usize, kernel: usize, stride: usize) -> (usize, (usize, usize)) {
    let out = input.div_ceil(stride);
    let total = ((out.saturating_sub(1)) * stride + kernel).saturating_sub(input);
    let before = total / 2;
    (out, (before, total - before))
}

#[cfg(test)]
mod tests {
    use super::same_padding;

    #[test]
    fn hand_computed_cases() {
        // 3x3 stride 2, even: out = 112, total = 111*2 + 3 - 224 = 1 -> (0, 1).
        assert_eq!(same_padding(224, 3, 2), (112, (0, 1)));
        // 3x3 stride 2, odd: out = 8, total = 7*2 + 3 - 15 = 2 -> (1, 1).
        assert_eq!(same_padding(15, 3, 2), (8, (1, 1)));
        // 3x3 stride 1: out = in, total = 2 -> (1, 1) for every size.
        assert_eq!(same_padding(7, 3, 1), (7, (1, 1)));
        assert_eq!(same_padding(1, 3, 1), (1, (1, 1)));
        // 1x1: no padding.
        assert_eq!(same_padding(13, 1, 1), (13, (0, 0)));
        // 3x3 stride 2 on 1 pixel: out = 1, total = 0 + 3 - 1 = 2 -> (1, 1).
        assert_eq!(same_padding(1, 3, 2), (1, (1, 1)));
        // 3x3 stride 2 on 2 pixels: out = 1, total = 3 - 2 = 1 -> (0, 1).
        assert_eq!(same_padding(2, 3, 2), (1, (0, 1)));
        // 97 (odd, the parity fixture's height): out = 49, total = 48*2 + 3 - 97 = 2 -> (1, 1).
        assert_eq!(same_padding(97, 3, 2), (49, (1, 1)));
        // 131: out = 66, total = 65*2 + 3 - 131 = 2 -> (1, 1); 66 -> 33, total 1 -> (0, 1).
        assert_eq!(same_padding(131, 3, 2), (66, (1, 1)));
        assert_eq!(same_padding(66, 3, 2), (33, (0, 1)));
    }
}
