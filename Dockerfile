FROM python:3.11-slim
WORKDIR /opt/clm
COPY requirements.lock pyproject.toml README.md ./
# The lock pins the production drivers too (redis, psycopg, psycopg2-binary, celery).
RUN pip install --no-cache-dir uv==0.13.8 \
 && uv pip install --system --no-cache --compile-bytecode -r requirements.lock
COPY clm ./clm
RUN uv pip install --system --no-cache --no-deps -e .
COPY dags ./dags
COPY plugins ./plugins
COPY feature_repo ./feature_repo
COPY expectations ./expectations
COPY docker ./docker
COPY .env.example ./
# Run as a user, not root; the state and MLflow volumes start owned by it.
RUN useradd --create-home --uid 1000 clm \
 && mkdir -p /opt/clm/state /opt/clm/mlflow \
 && chown -R clm:clm /opt/clm/state /opt/clm/mlflow
USER clm
