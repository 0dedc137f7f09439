//! Kernel command line → BootPlan: a tokenizer plus one parser per syntax.

pub mod rootpath;
