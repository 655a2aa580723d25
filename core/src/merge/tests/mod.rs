mod gc;
mod tree;
