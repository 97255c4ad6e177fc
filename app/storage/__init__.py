"""Storage: the only code with SQL. Engine and session scope (db.py), ORM tables (models.py),
and one repository module per concern.

Each function opens its own session scope, translates database errors (an unreachable
database is ``StorageUnavailable``, which the API answers with 503), and never hands out ORM
rows. Entities come back as the API's schemas (app/schemas), a stored study's spec as the
domain's ``StudySpec``; the study page's bulk read queries (views.py) return plain row dicts,
because validating thousands of histogram rows would cost more than the query itself.
"""
