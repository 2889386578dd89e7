FROM python:3.11-slim
WORKDIR /opt/clm
COPY requirements.lock pyproject.toml README.md ./
# The lock pins the production drivers too (redis, psycopg, psycopg2-binary).
RUN pip install --no-cache-dir uv==0.13.8 \
 && uv pip install --system --no-cache --compile-bytecode -r requirements.lock
COPY clm ./clm
COPY training ./training
RUN uv pip install --system --no-cache --no-deps -e .
COPY dags ./dags
COPY plugins ./plugins
COPY feature_repo ./feature_repo
COPY expectations ./expectations
