"""Hardware-facing basics: mesh axis names, chip figures and device meshes."""
