//! dropship
