//! Class labels. ImageNet folders get their index in the standard sorted list of the 1000
//! ILSVRC-2012 synsets (shipped in `data/imagenet_synsets.txt`, the list timm and torchvision
//! use), so a subset of the classes keeps the full-set indices. Folders whose class names
//! are not all ImageNet synsets are labelled by their index in their own sorted class list,
//! which the manifest records.

use std::collections::BTreeMap;

/// The 1000 ILSVRC-2012 synsets in sorted order (index = class label).
pub fn imagenet_synsets() -> Vec<&'static str> {
    include_str!("../data/imagenet_synsets.txt")
        .lines()
        .filter(|l| !l.is_empty())
        .collect()
}

/// How class names map to integer labels.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum LabelSet {
    /// Index in the sorted ImageNet-1k synset list.
    Imagenet1k,
    /// Index in this sorted list of the dataset's own classes.
    Classes { names: Vec<String> },
}

impl LabelSet {
    /// Chooses the label set for a set of class names (see the module docs).
    pub fn for_classes<'a>(names: impl IntoIterator<Item = &'a str>) -> LabelSet {
        let names: std::collections::BTreeSet<&str> = names.into_iter().collect();
        let synsets = imagenet_synsets();
        if !names.is_empty() && names.iter().all(|n| synsets.binary_search(n).is_ok()) {
            LabelSet::Imagenet1k
        } else {
            LabelSet::Classes {
                names: names.into_iter().map(str::to_string).collect(),
            }
        }
    }

    /// A lookup table from class name to label.
    pub fn index(&self) -> BTreeMap<String, i32> {
        let names: Vec<String> = match self {
            LabelSet::Imagenet1k => imagenet_synsets().into_iter().map(str::to_string).collect(),
            LabelSet::Classes { names } => names.clone(),
        };
        names
            .into_iter()
            .enumerate()
            .map(|(i, n)| (n, i as i32))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn synset_list_is_the_standard_one() {
        let s = imagenet_synsets();
        assert_eq!(s.len(), 1000);
        assert!(s.windows(2).all(|w| w[0] < w[1]), "sorted, no duplicates");
        assert_eq!(s[0], "n01440764"); // tench
        assert_eq!(s[1], "n01443537"); // goldfish
        assert_eq!(s[999], "n15075141"); // toilet tissue
    }

    #[test]
    fn subsets_keep_full_set_indices() {
        let set = LabelSet::for_classes(["n01443537", "n15075141"]);
        assert_eq!(set, LabelSet::Imagenet1k);
        let idx = set.index();
        assert_eq!(idx["n01443537"], 1);
        assert_eq!(idx["n15075141"], 999);
    }

    #[test]
    fn other_datasets_use_their_sorted_classes() {
        let set = LabelSet::for_classes(["dog", "cat", "n01443537"]);
        assert_eq!(
            set,
            LabelSet::Classes {
                names: vec!["cat".into(), "dog".into(), "n01443537".into()]
            }
        );
        assert_eq!(set.index()["dog"], 1);
    }
}
