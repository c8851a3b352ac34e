//! The shard schema, version 1 (ARCHITECTURE §4): one row per view of one image.
//!
//! | column | Arrow type |
//! |---|---|
//! | `key` | utf8 |
//! | `view` | int16 |
//! | `crop` | struct{left, top, width, height: float32; flip: bool} |
//! | `label` | int32, nullable |
//! | `caption` | utf8, nullable |
//! | `image` | binary (PNG of exactly the pixels the targets came from) |
//! | `hog` | fixed_size_list<float16>[tokens·108], token-major |
//!
//! | `dinov2`, `siglip`, `clip` | fixed_size_list<float16>[tokens·dim] (f16 storage) or
//! fixed_size_list<int8>[tokens·dim] plus `<name>_scale` fixed_size_list<float16>[tokens] (int8
//! storage), token-major, one per configured teacher |
//!
//! | `text_ids` | list<int32>, nullable: caption BPE ids `[49406, …, 49407]` (≤ 77), null without caption |
//!
//! Readers find the columns a dataset has in its manifest.

use std::sync::Arc;

use arrow::datatypes::{DataType, Field, Fields, Schema};

/// Shard schema version written by this code.
pub const SCHEMA_VERSION: u32 = 1;

/// What a dataset's rows carry beyond the fixed columns.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SchemaSpec {
    /// Number of HOG tokens per view, or `None` when HOG is off.
    pub hog_tokens: Option<usize>,
    /// ViT teacher columns, in column order.
    pub teachers: Vec<TeacherColumn>,
    /// A `text_ids` column (caption BPE ids).
    pub text_ids: bool,
}

/// One ViT teacher's column(s).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TeacherColumn {
    pub name: String,
    pub tokens: usize,
    pub dim: usize,
    /// int8 values with a per-token f16 scale column instead of f16 values.
    pub int8: bool,
}

impl TeacherColumn {
    pub fn scale_column(&self) -> String {
        format!("{}_scale", self.name)
    }
}

/// `list<int32>`: caption BPE ids.
pub fn text_ids_type() -> DataType {
    DataType::List(Arc::new(Field::new("item", DataType::Int32, false)))
}

/// `fixed_size_list<int8>[len]`.
pub fn i8_list(len: usize) -> DataType {
    DataType::FixedSizeList(
        Arc::new(Field::new("item", DataType::Int8, false)),
        len as i32,
    )
}

/// The fields of the `crop` struct.
pub fn crop_fields() -> Fields {
    Fields::from(vec![
        Field::new("left", DataType::Float32, false),
        Field::new("top", DataType::Float32, false),
        Field::new("width", DataType::Float32, false),
        Field::new("height", DataType::Float32, false),
        Field::new("flip", DataType::Boolean, false),
    ])
}

/// `fixed_size_list<float16>[len]`.
pub fn f16_list(len: usize) -> DataType {
    DataType::FixedSizeList(
        Arc::new(Field::new("item", DataType::Float16, false)),
        len as i32,
    )
}

/// The Arrow schema of a dataset's shards.
pub fn arrow_schema(spec: &SchemaSpec) -> Schema {
    let mut fields = vec![
        Field::new("key", DataType::Utf8, false),
        Field::new("view", DataType::Int16, false),
        Field::new("crop", DataType::Struct(crop_fields()), false),
        Field::new("label", DataType::Int32, true),
        Field::new("caption", DataType::Utf8, true),
        Field::new("image", DataType::Binary, false),
    ];
    if let Some(tokens) = spec.hog_tokens {
        fields.push(Field::new(
            "hog",
            f16_list(tokens * maetok_teachers::hog::DIM),
            false,
        ));
    }
    for t in &spec.teachers {
        let len = t.tokens * t.dim;
        if t.int8 {
            fields.push(Field::new(&t.name, i8_list(len), false));
            fields.push(Field::new(t.scale_column(), f16_list(t.tokens), false));
        } else {
            fields.push(Field::new(&t.name, f16_list(len), false));
        }
    }
    if spec.text_ids {
        fields.push(Field::new("text_ids", text_ids_type(), true));
    }
    Schema::new(fields)
}

/// Whether two types are the same up to the names of list children (pyarrow calls them
/// `element`, arrow-rs `item`) and child nullability flags.
pub fn same_type(a: &DataType, b: &DataType) -> bool {
    match (a, b) {
        (DataType::FixedSizeList(x, n), DataType::FixedSizeList(y, m)) => {
            n == m && same_type(x.data_type(), y.data_type())
        }
        (DataType::List(x), DataType::List(y))
        | (DataType::LargeList(x), DataType::LargeList(y)) => {
            same_type(x.data_type(), y.data_type())
        }
        (DataType::Struct(x), DataType::Struct(y)) => {
            x.len() == y.len()
                && x.iter()
                    .zip(y.iter())
                    .all(|(f, g)| f.name() == g.name() && same_type(f.data_type(), g.data_type()))
        }
        _ => a == b,
    }
}

/// Differences between an expected and an actual schema, one line each (empty when equal).
pub fn schema_differences(expected: &Schema, actual: &Schema) -> Vec<String> {
    let mut out = Vec::new();
    for f in expected.fields() {
        match actual.field_with_name(f.name()) {
            Err(_) => out.push(format!("missing column `{}` ({})", f.name(), f.data_type())),
            Ok(g) if !same_type(f.data_type(), g.data_type()) => out.push(format!(
                "column `{}` is {}, expected {}",
                f.name(),
                g.data_type(),
                f.data_type()
            )),
            Ok(_) => {}
        }
    }
    for g in actual.fields() {
        if expected.field_with_name(g.name()).is_err() {
            out.push(format!(
                "unexpected column `{}` ({})",
                g.name(),
                g.data_type()
            ));
        }
    }
    out
}
