//! The 1001 ImageNet labels of the TF-Slim models (`background` first), embedded in the binary.
//! `labels/imagenet_labels.txt` is derived by tools/make_labels.py.

use std::sync::OnceLock;

/// Label of each of the 1001 logits; index 0 is `background`.
pub fn imagenet() -> &'static [&'static str] {
    static LABELS: OnceLock<Vec<&'static str>> = OnceLock::new();
    LABELS.get_or_init(|| {
        include_str!("../labels/imagenet_labels.txt")
            .lines()
            .collect()
    })
}

/// Labels of a fine-tuned model or the ImageNet ones, as one owned list.
pub fn owned_imagenet() -> Vec<String> {
    imagenet().iter().map(|s| s.to_string()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::NUM_CLASSES;

    #[test]
    fn there_are_1001_with_background_first() {
        let l = imagenet();
        assert_eq!(l.len(), NUM_CLASSES);
        assert_eq!(l[0], "background");
        // TensorFlow's spellings (ImageNetLabels.txt): cup example of testdata/README.md.
        assert_eq!(l[505], "coffee mug");
        assert_eq!(l[108], "jellyfish");
        assert_eq!((l[282], l[283]), ("tabby", "tiger cat"));
    }
}
