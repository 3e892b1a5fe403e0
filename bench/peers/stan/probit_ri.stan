// probit_ri: two-level binary probit with a random intercept, Mplus default
// priors.
//   P(u_ij = 1) = Phi(eta_ij - tau1),  eta_ij = beta x_ij + a_j,
//   a_j ~ N(0, psi)   (within latent-response variance fixed at 1)
// Priors (Mplus defaults): beta and tau1 flat; psi flat on the variance scale
// (IG(-1, 0)); no prior statements. a_j centred (sampled better than
// non-centred here: 20-30 observations per cluster).
data {
  int<lower=1> N;
  int<lower=1> J;
  int<lower=1, upper=J> cl[N];
  int<lower=0, upper=1> u[N];
  vector[N] x;
}
transformed data {
  vector[N] s;                 // +1 for u = 1, -1 for u = 0
  for (n in 1:N) s[n] = 2 * u[n] - 1;
}
parameters {
  real beta;                   // u~x
  real tau1;                   // threshold u$1
  real<lower=0> psi;           // between variance of a_j
  vector[J] a;                 // centred random intercepts
}
model {
  a ~ normal(0, sqrt(psi));
  // log P(u) = log Phi(s (eta - tau1))
  target += normal_lcdf(s .* (beta * x + a[cl] - tau1) | 0, 1);
}
