"""CIP (Common Industrial Protocol): the explicit messages EtherNet/IP carries (dissectors/enip/).

consts.py holds the tables (services and access classes, statuses, classes, vendors, device types), names.py
the lookups over them, path.py the EPATH decoder, identity.py the Identity object, and session.py the message
decoder: ``CipSession`` is the per-flow state that pairs replies with requests.
"""
