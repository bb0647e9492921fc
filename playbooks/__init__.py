"""The pod playbooks (an Ansible project), shipped as package data bootstrap.playbooks
(pyproject maps this folder there; bootstrap/resources.py finds it)."""
