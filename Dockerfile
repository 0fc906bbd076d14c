# pythanc in a container, used as in the Orthanc Book's Docker instructions for the Python plugin:
#
#   docker build -t pythanc .
#   docker run -p 4242:4242 -p 8042:8042 \
#       -v $PWD/orthanc.json:/etc/orthanc/orthanc.json:ro \
#       -v $PWD/script.py:/etc/orthanc/script.py:ro pythanc
#
# with "PythonScript": "/etc/orthanc/script.py" in the mounted orthanc.json (and, to reach Orthanc
# from outside the container, "RemoteAccessAllowed": true plus authentication).  The image adds
# /etc/orthanc/pythanc.json, which loads the plugin; Orthanc reads every JSON file of /etc/orthanc.
# Not built by CI (no container engine there).
FROM debian:bookworm

RUN printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d \
 && apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
        orthanc orthanc-dev python3 python3-venv python3-dev libpython3-dev gcc libc6-dev \
 && rm -rf /var/lib/apt/lists/* /usr/sbin/policy-rc.d

COPY . /src/pythanc
RUN python3 -m venv /opt/pythanc \
 && /opt/pythanc/bin/pip install --no-cache-dir "/src/pythanc[samples]" \
 && rm -rf /src/pythanc \
 && printf '{ "Plugins": [ "%s" ] }\n' "$(/opt/pythanc/bin/pythanc plugin-path)" > /etc/orthanc/pythanc.json

EXPOSE 4242 8042
ENTRYPOINT ["/usr/sbin/Orthanc"]
CMD ["/etc/orthanc/"]
