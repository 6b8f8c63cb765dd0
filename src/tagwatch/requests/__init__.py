"""Location data requests: asked with a lawful basis, approved by another, fulfilled at once."""
