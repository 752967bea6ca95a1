"""An actor's references: stills and clips read, faces found and aligned, and the schema-versioned
``refs.npz`` that the fine-tune and synthesis read."""
