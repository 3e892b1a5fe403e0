#!/usr/bin/env Rscript
# ML reference values from lme4 for jaxsem's three-level likelihood
# (jaxsem.ml.likelihood.three_level_logliks), on the data of the reconstructed
# Mplus UG ex9.20 (configs/mplus_ug/ex9_20.dat): y on x at level 1, a random
# intercept at level 2, and at level 3 a random intercept and a random slope of the
# level-2 covariate w, both regressed on the level-3 covariate z. In lme4 terms:
#   y ~ x + z + w + z:w + (1 + w | level3) + (1 | level2)     (REML = FALSE)
# The "missing" data set sets y to NA on every 7th row (rows 3, 10, 17, ...;
# deterministic): with one outcome, FIML and lme4's dropped rows coincide.
# "level1_slope": a level-1 random slope of x varying over level-2 units,
# y ~ x + (1 | level3) + (1 + x | level2), on data simulated here (set.seed(20261127);
# written to data/threelevel_level1_slope.csv): 40 level-3 clusters x 4 level-2 units x
# 6 observations, slope mean 0.5 and variance 0.25, level-2 intercept variance 0.5 and
# covariance 0.1 with the slope, level-3 intercept variance 0.3, residual variance 1.
#
# Regenerate (from the repository root; any cwd works):
#   apt-get update && apt-get install -y r-cran-lme4 r-cran-jsonlite   (MASS comes with R)
#   Rscript bench/peers/lme4_threelevel.R
# Writes outputs/lme4_threelevel.json (paths relative to this script).

suppressPackageStartupMessages({
  library(lme4)
  library(jsonlite)
})

args <- commandArgs(trailingOnly = FALSE)
script <- sub("^--file=", "", args[grep("^--file=", args)])
here <- if (length(script) == 1L) dirname(normalizePath(script)) else getwd()
data_path <- file.path(here, "..", "..", "configs", "mplus_ug", "ex9_20.dat")
complete <- read.table(data_path, col.names = c("y", "x", "w", "z", "level2", "level3"))
missing <- complete
missing$y[seq(3, nrow(missing), by = 7)] <- NA

fit_one <- function(data) {
  fit <- lmer(y ~ x + z + w + z:w + (1 + w | level3) + (1 | level2), data = data,
              REML = FALSE)
  vc <- as.data.frame(VarCorr(fit))
  pick <- function(grp, v1, v2 = NA) {
    row <- vc$grp == grp & vc$var1 %in% v1 & (if (is.na(v2)) is.na(vc$var2) else vc$var2 %in% v2)
    vc$vcov[row]
  }
  list(loglik = as.numeric(logLik(fit)), df = attr(logLik(fit), "df"),
       n_rows = nobs(fit), converged = length(fit@optinfo$conv$lme4$messages) == 0L,
       fixed_effects = as.list(fixef(fit)),
       level2_intercept_variance = pick("level2", "(Intercept)"),
       level3_intercept_variance = pick("level3", "(Intercept)"),
       level3_slope_variance = pick("level3", "w"),
       level3_intercept_slope_covariance = pick("level3", "(Intercept)", "w"),
       residual_variance = sigma(fit)^2)
}

simulate_slope <- function() {
  set.seed(20261127)
  level3 <- rep(1:40, each = 24)
  level2 <- rep(1:160, each = 6)
  u2 <- MASS::mvrnorm(160, c(0, 0), matrix(c(0.5, 0.1, 0.1, 0.25), 2))
  u3 <- rnorm(40, 0, sqrt(0.3))
  x <- rnorm(960)
  y <- 1 + u3[level3] + u2[level2, 1] + (0.5 + u2[level2, 2]) * x + rnorm(960)
  data.frame(y = y, x = x, level2 = level2, level3 = level3)
}
slope_data <- simulate_slope()
write.csv(slope_data, file.path(here, "data", "threelevel_level1_slope.csv"), row.names = FALSE)

fit_slope <- function(data) {
  fit <- lmer(y ~ x + (1 | level3) + (1 + x | level2), data = data, REML = FALSE)
  vc <- as.data.frame(VarCorr(fit))
  list(loglik = as.numeric(logLik(fit)), df = attr(logLik(fit), "df"),
       fixed_effects = as.list(fixef(fit)),
       level2_intercept_variance = vc$vcov[vc$grp == "level2" & vc$var1 == "(Intercept)" & is.na(vc$var2)],
       level2_slope_variance = vc$vcov[vc$grp == "level2" & vc$var1 == "x" & is.na(vc$var2)],
       level2_intercept_slope_covariance = vc$vcov[vc$grp == "level2" & !is.na(vc$var2)],
       level3_intercept_variance = vc$vcov[vc$grp == "level3"],
       residual_variance = sigma(fit)^2)
}

# "crossed": the reconstructed UG ex9.24 (configs/mplus_ug/ex9_24.dat), two crossed
# random intercepts: y ~ x + w + z + (1 | level2a) + (1 | level2b).
crossed_data <- read.table(file.path(here, "..", "..", "configs", "mplus_ug", "ex9_24.dat"),
                           col.names = c("y", "x", "w", "z", "level2a", "level2b"))
fit_crossed <- function(data) {
  fit <- lmer(y ~ x + w + z + (1 | level2a) + (1 | level2b), data = data, REML = FALSE)
  vc <- as.data.frame(VarCorr(fit))
  list(loglik = as.numeric(logLik(fit)), fixed_effects = as.list(fixef(fit)),
       level2a_variance = vc$vcov[vc$grp == "level2a"],
       level2b_variance = vc$vcov[vc$grp == "level2b"],
       residual_variance = sigma(fit)^2)
}

out <- list(`_meta` = list(lme4_version = as.character(packageVersion("lme4")),
                           r_version = R.version.string,
                           formula = "y ~ x + z + w + z:w + (1 + w | level3) + (1 | level2)",
                           data = "configs/mplus_ug/ex9_20.dat; missing: y NA on rows 3, 10, 17, ..."),
            complete = fit_one(complete), missing = fit_one(missing),
            level1_slope = fit_slope(slope_data), crossed = fit_crossed(crossed_data))
path <- file.path(here, "outputs", "lme4_threelevel.json")
write_json(out, path, digits = NA, auto_unbox = TRUE, pretty = TRUE)
cat("wrote", path, "\n")
