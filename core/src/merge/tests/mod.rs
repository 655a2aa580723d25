mod gc;
mod order;
mod tree;
