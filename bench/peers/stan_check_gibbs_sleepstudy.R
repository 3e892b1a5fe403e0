#!/usr/bin/env Rscript
# Independent check of the priors in stan/sleepstudy.stan: an exact Gibbs
# sampler for the same model and the same Mplus-default priors
#   g flat, Sigma flat on the matrix  => Sigma | b, g ~ IW(J - K - 1, S),
#   sigma2 flat on the variance       => sigma2 | .  ~ IG(N/2 - 1, SSE/2).
# Its medians should match outputs/stan_sleepstudy.json within MC error.
# Usage (from the repository root): Rscript bench/peers/stan_check_gibbs_sleepstudy.R
# Prints medians, sds and MCSEs of the medians (order: g0, g1, Sigma11, Sigma22, Sigma12, sigma2);
# writes nothing. About 1-2 minutes.
get_script_dir <- function() {
  args <- commandArgs(trailingOnly = FALSE)
  f <- sub("^--file=", "", args[grep("^--file=", args)])
  if (length(f) == 1L) return(dirname(normalizePath(f)))
  getwd()
}
here <- get_script_dir()
set.seed(20251126)
d <- read.csv(file.path(here, "data", "sleepstudy.csv"))
s <- as.integer(factor(d$Subject)); J <- max(s); N <- nrow(d); K <- 2
X <- cbind(1, d$Days); y <- d$Reaction
g <- c(250, 10); Sigma <- diag(c(600, 35)); s2 <- 650; b <- matrix(0, J, 2)
rIW <- function(nu, S) { W <- rWishart(1, nu, solve(S))[,,1]; solve(W) }
n_it <- 60000; keep <- matrix(NA, n_it, 6)
XtX <- lapply(1:J, function(j) crossprod(X[s==j,])); Xty <- lapply(1:J, function(j) crossprod(X[s==j,], y[s==j]))
for (it in 1:n_it) {
  Si <- solve(Sigma)
  for (j in 1:J) { P <- XtX[[j]]/s2 + Si; V <- solve(P); m <- V %*% (Xty[[j]]/s2 + Si %*% g)
    b[j,] <- m + t(chol(V)) %*% rnorm(2) }
  g <- colMeans(b) + t(chol(Sigma/J)) %*% rnorm(2)
  R <- sweep(b, 2, g); Sigma <- rIW(J - K - 1, crossprod(R))
  e <- y - rowSums(X * b[s,]); s2 <- 1/rgamma(1, N/2 - 1, sum(e^2)/2)
  keep[it,] <- c(g, Sigma[1,1], Sigma[2,2], Sigma[1,2], s2)
}
k <- keep[-(1:5000),]
out <- rbind(median = apply(k, 2, median), sd = apply(k, 2, sd))
if (requireNamespace("posterior", quietly = TRUE))
  out <- rbind(out, mcse_median = apply(k, 2, posterior::mcse_median))
colnames(out) <- c("reaction~1", "s~1", "reaction~~reaction", "s~~s", "reaction~~s", "within reaction~~reaction")
print(round(out, 3))
