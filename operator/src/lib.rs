pub mod controller;
pub mod crd;
pub mod render;
