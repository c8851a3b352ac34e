pub mod maetok;
pub mod sit;
