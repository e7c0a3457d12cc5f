# Stand-in for mysql:8.4, built from Debian packages: MariaDB with an
# entrypoint that honours the official image's MYSQL_* variables.
ARG BASE
FROM ${BASE}
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      mariadb-server mariadb-client \
 && rm -rf /var/lib/apt/lists/* /var/lib/mysql/* \
 && mkdir -p /run/mysqld && chown mysql:mysql /run/mysqld /var/lib/mysql
COPY mysql-entrypoint.sh /usr/local/bin/
USER mysql
EXPOSE 3306
ENTRYPOINT ["mysql-entrypoint.sh"]
CMD ["mariadbd"]
