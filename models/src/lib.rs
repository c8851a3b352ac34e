pub mod maetok;
