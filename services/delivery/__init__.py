"""Getting a job's progress and result in front of people: pacing the edits, fitting images to the upload limit,
and remembering what was already posted. Used by the display (ui/display.py) and the runner; no Discord types."""
