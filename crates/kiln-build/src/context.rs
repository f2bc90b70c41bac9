//! Build context: walking, .dockerignore, checksums (being written).
