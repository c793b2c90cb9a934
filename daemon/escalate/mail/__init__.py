"""Mail as bytes and back, with no database: parsing, the MIME tree, classifying bounces and
auto-replies, composing our own mail, reply tokens, VERP addresses and quoted text."""
