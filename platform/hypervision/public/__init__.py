"""What citizens and installers see: public device pages, QR labels, the register.

- `pages.py`: the FastAPI router (no login) serving `/d/<public id>` (a device's page and
  its QR codes) and `/m/<member>/register` (the register of processing activities, HTML
  and JSON), French by default, `?lang=en` for English;
- `labels.py`: printable A4 sheets of QR labels (HTML with print CSS, or PDF);
- `records.py`: the only data these read, from the hv.public_* views;
- `access.py`: the least-privileged database role they read with.

Nothing here loads anything from outside the deployment: styles are served by the
router itself and fonts are the reader's own. See README.md beside this file.
"""
