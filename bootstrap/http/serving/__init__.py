"""Serving the app: gunicorn (:mod:`.wsgi`, with :mod:`.heads`' worker) and the nginx
front (:mod:`.front`). The command-line entry is :mod:`bootstrap.http.wsgi`."""
