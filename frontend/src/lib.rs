//! kiln-frontend.
