"""Models of the course: image encoders, text encoders, fusion modules and heads."""
