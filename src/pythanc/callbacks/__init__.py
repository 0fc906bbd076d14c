"""The SDK callbacks, one module per family (rest, changes, stored, filters, dicom_scp, storage_area,
storage_commitment, imaging, chunked_rest, webdav, jobs, metrics), over ``registry``, the machinery
they share.  A new SDK callback goes into the module of its family (see docs/architecture.md)."""
