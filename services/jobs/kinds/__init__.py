"""The kinds of job: each module declares one, by what admission needs of it (services/jobs/admission.py).

A kind says how the model is chosen when the request names none, how the request's images are picked, how the
model's input is built from them, and what it keeps in the job (`JobExtra`). Its words (origin line, history
label, button) are in ui/kind_words.py. `Job.kind` holds the kind's `name`; no table lists the kinds, so a new
one needs no migration.
"""
