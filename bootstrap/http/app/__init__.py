"""The app: :func:`~.factory.create_app` builds the Flask app from the views and puts
the lean ``/boot/ipxe`` path in front of it."""
