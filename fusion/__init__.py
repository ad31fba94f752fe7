"""Everything that makes a fused image: colour handling, methods, SSPFusion, quality metrics."""
