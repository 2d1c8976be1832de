"""Infrastructure below every app: no Django imports here, so the build worker can use it too."""
