"""``grader serve``: TA grading in the browser (a Starlette app on uvicorn; marks in ``grader.marksdb``).

Modules: ``app`` (routes, server), ``routes`` (pages), ``security`` (token, CSRF, headers), ``state``
(the class being graded), ``answers`` (markdown, MathML, keyword highlighting), ``groups`` (alike
answers, possibly copied ones). Importing this package imports no web framework.
"""
