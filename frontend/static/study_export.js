// Study page section for issue 6 (filled in by its own change); the section stays hidden until then.
