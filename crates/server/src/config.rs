//! Service configuration (placeholder, being written).
